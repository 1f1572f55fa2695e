"""The paper's numbers that the tests check (He et al. 2016), in one place."""

# Sec. 4.2 / Table 6: exact counts for option A, BN affine and fc bias included (the paper rounds: 0.27M...);
# a plain twin has the same parameters under option A.
CIFAR_PARAMS = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962, 1202: 19_421_274}

# Table 1: multiply-adds ("FLOPs") at 224x224.
IMAGENET_MACS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}

# Table 1's ResNet-50 with option B, 1000 classes.
RESNET50_PARAMS = 25_557_032

# Table 6: CIFAR-10 test error (%), option A.
TABLE6_TEST_ERROR = {"resnet20": 8.75, "resnet56": 6.97}
