"""Reading runs back and reproducing the paper's figures and tables from them.

- `runs`: find run directories, read their metrics.json, saved config and TensorBoard curves;
- `figures`: Fig. 4/6-style error curves and Fig. 7-style layer responses;
- `tables`: Table 6-style summaries over seeds, beside the paper's numbers;
- `responses`: the std of each 3x3 layer's response (Fig. 7) for a checkpoint.
"""
