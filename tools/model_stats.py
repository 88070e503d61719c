"""Parameters, multiply-adds and activation memory of a network, per stage and in total
(the ResNet/ResNeXt papers' Table 1 as output; what is counted: mxresnet/stats.py).

    python tools/model_stats.py --model resnext50_32x4d
    python tools/model_stats.py --network resnext --num-layers 50 --image-shape 3,224,224
    python tools/model_stats.py --list            # the named models
"""
import os
import sys

if not __package__:  # run as a file: use the checkout's library
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mxresnet.errors import UsageError, run_tool  # noqa: E402


def build_parser():
    import symbols
    from mxresnet import flags
    parser = flags.parser(__doc__.split('\n\n')[0])
    parser.add_argument('--list', action='store_true', help='list the named models and exit')
    parser.add_argument('--model', choices=symbols.list_models(), metavar='NAME',
                        help='a named model: its network, depth, options and input shape')
    parser.add_argument('--network', choices=symbols.list_networks())
    parser.add_argument('--num-layers', type=int)
    parser.add_argument('--image-shape', help="'C,H,W', e.g. 3,224,224; default: the named "
                        "model's")
    parser.add_argument('--num-classes', type=int, help="default: the named model's, else "
                        '1000 for inputs higher than 32 px and 10 below')
    parser.add_argument('--dtype', help='float32 or float16')
    parser.add_argument('--num-group', type=int, help='resnext: cardinality C')
    parser.add_argument('--bottleneck-width', type=int, help='resnext: the d of "32x4d"')
    parser.add_argument('--shortcut', help='resnet-v1: A, B or C')
    parser.add_argument('--act-type', help='relu, prelu, leaky or elu')
    return parser


def run(args, out):
    import symbols
    from symbols.__main__ import format_models
    from mxresnet import flags
    from mxresnet.stats import format_table, model_stats
    if args.list:
        print(format_models(), file=out)
        return
    options = {key: value for key, value in vars(args).items() if value is not None and key in
               ('dtype', 'num_group', 'bottleneck_width', 'shortcut', 'act_type')}
    network, num_layers, image_shape, num_classes = (args.network, args.num_layers,
                                                     args.image_shape, args.num_classes)
    if args.model:
        config = symbols.model_config(args.model)
        options = dict(config.options, **options)
        network, num_layers = network or config.network, num_layers or config.num_layers
        image_shape = image_shape or ','.join(map(str, config.image_shape))
        num_classes = num_classes or config.num_classes
    missing = [flag for flag, value in (('--network', network), ('--num-layers', num_layers),
                                        ('--image-shape', image_shape)) if value is None]
    if missing:
        raise UsageError('give --model NAME, or %s' % ', '.join(missing))
    shape = flags.image_shape(image_shape)
    num_classes = num_classes or (1000 if shape[1] > 32 else 10)
    try:
        sym = symbols.get_symbol(network, num_classes=num_classes, num_layers=num_layers,
                                 image_shape=image_shape, **options)
    except ValueError as err:
        raise UsageError(str(err))
    print('%s, %d layers, input %s, %d classes%s' % (
        network, num_layers, 'x'.join(str(d) for d in shape), num_classes,
        ''.join(', %s=%s' % kv for kv in sorted(options.items()))), file=out)
    print(format_table(model_stats(sym, shape)), file=out)


def main(argv=None):
    args = build_parser().parse_args(argv)
    return run_tool(lambda: run(args, sys.stdout), prog='model_stats.py')


if __name__ == '__main__':
    sys.exit(main())
