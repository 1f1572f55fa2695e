"""Reading runs back and reproducing the paper's figures and tables from them.

- `runs`: find run directories, read their metrics.json, saved config and TensorBoard curves;
- `groups`: which runs are seeds of one experiment, and their curves' mean with a min-max band;
- `figures`: Fig. 4/6-style error curves and Fig. 7-style layer responses;
- `tables`: Table 6-style summaries over seeds, beside the paper's numbers;
- `claims`: the paper's claims about depth, with our numbers, their noise and a verdict;
- `aggregate`: TensorBoard runs of each group's mean and band over seeds;
- `responses`: the std of each 3x3 layer's response (Fig. 7) for a checkpoint.
"""
