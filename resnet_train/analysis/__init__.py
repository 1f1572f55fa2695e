"""Reading runs back and reproducing the paper's figures (Fig. 4, 6, 7), Table 6 and its claims from them."""
