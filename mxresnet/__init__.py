"""The library under `train_resnet.py` and `tools/`: training, checkpoints, data, inference.

One module per concern (see each module's docstring); `symbols` holds the graphs. Importing
any module changes nothing in the process: runtime settings are applied by the commands'
`main()` (`mxresnet.runtime`).
"""
