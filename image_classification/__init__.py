"""ResNet-50 v1.5 on ImageNet 2012: the MLPerf Training `resnet` benchmark, in PyTorch and TensorFlow."""
