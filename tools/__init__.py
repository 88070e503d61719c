"""The command-line tools: each a parser and a main() over the mxresnet library. Run them as
files (python tools/score.py ...) or, installed, as the resnet-* console scripts
(mxresnet.tools.score ...)."""
