"""`python -m symbols --list`: the named models, their networks, depths, options and inputs."""
import argparse
import sys

from . import list_models, model_config


def format_models():
    lines = ['%-18s %-10s %6s  %-12s %-34s %s' % ('model', 'network', 'layers', 'input',
                                                   'options', 'classes')]
    for name in list_models():
        config = model_config(name)
        options = ', '.join('%s=%s' % kv for kv in sorted(config.options.items())) or '-'
        lines.append('%-18s %-10s %6d  %-12s %-34s %d' % (
            name, config.network, config.num_layers, 'x'.join(map(str, config.image_shape)),
            options, config.num_classes))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m symbols', description=__doc__)
    parser.add_argument('--list', action='store_true', help='list the named models')
    args = parser.parse_args(argv)
    if not args.list:
        parser.print_help()
        return 0
    print(format_models())
    return 0


if __name__ == '__main__':
    sys.exit(main())
