"""The exponential moving average of the weights (--model-ema, --model-ema-decay): after
each update, ema = decay * ema + (1 - decay) * value, for every parameter and every
BatchNorm statistic (timm's ModelEmaV2 and torchvision's ExponentialMovingAverage with
use_buffers average both).

Deliberate deviation: the average follows every update with the decay as given (timm's
way); torchvision's reference --model-ema-steps (an update every N steps, with the decay
adjusted to the batch size and epochs) and its reset during warm-up are not reproduced.
"""
import mxnet as mx


class WeightAverage(object):
    """The moving average of a Module's parameters and auxiliary states, held in float32
    beside them (on its first device)."""

    def __init__(self, decay, arg_params, aux_params, context):
        """Starts at `arg_params` and `aux_params` ({name: NDArray}, copied)."""
        self.decay = float(decay)
        self.context = context
        self.dtypes = {}
        self.arg_params = self._copies(arg_params)
        self.aux_params = self._copies(aux_params)

    def _copies(self, params):
        copies = {}
        for name, value in params.items():
            self.dtypes[name] = value.dtype
            copies[name] = value.as_in_context(self.context).astype('float32', copy=True)
        return copies

    @staticmethod
    def module_arrays(module):
        """([(name, [array per device])] of the parameters, the same of the auxiliary
        states) of a bound Module."""
        group = module._exec_group  # pylint: disable=protected-access
        return (list(zip(group.param_names, group.param_arrays)),
                list(zip(group.aux_names, group.aux_arrays)))

    def update(self, module):
        """One step towards the Module's current values: its parameters (equal on every
        device after an update) from the first device, the BatchNorm statistics (each device
        keeps its own) averaged over the devices, as Module.get_params averages them."""
        # As checkpoint.save does: MXNet 1.9.1 does not order a BatchNorm's update of its
        # moving statistics before a later read of them on the CPU.
        mx.nd.waitall()
        params, aux = self.module_arrays(module)
        for averages, arrays in ((self.arg_params, params), (self.aux_params, aux)):
            for name, copies in arrays:
                value = copies[0].as_in_context(self.context)
                if len(copies) > 1 and averages is self.aux_params:
                    value = sum(c.as_in_context(self.context) for c in copies) / len(copies)
                average = averages[name]
                average *= self.decay
                average += (1 - self.decay) * value.astype('float32', copy=False)

    def params(self):
        """(arg_params, aux_params): CPU copies of the averages, in the dtypes of the values
        they average."""
        def copies(averages):
            return {name: value.astype(self.dtypes[name]).copyto(mx.cpu())
                    for name, value in averages.items()}
        return copies(self.arg_params), copies(self.aux_params)
