"""Error-versus-epoch curves of training runs, as in the ResNet paper's figures: training
error dashed, validation error solid (the moving average of --model-ema dotted), one colour
per run (tools/plot_curves.py, and the experiments' reports)."""
from .log import read_epochs


def draw(ax, logs, labels, title=None):
    """Training (dashed) and validation (solid; dotted: the weights' moving average, where
    the log has it) error of each log on one matplotlib axes."""
    for index, (path, label) in enumerate(zip(logs, labels)):
        records = read_epochs(path)
        color = 'C%d' % (index % 10)
        epochs = [r['epoch'] for r in records]
        ax.plot(epochs, [100 * (1 - r['train_top1']) for r in records], '--', color=color,
                label='%s train' % label)
        if all('val_top1' in r for r in records):
            ax.plot(epochs, [100 * (1 - r['val_top1']) for r in records], '-', color=color,
                    linewidth=2, label='%s val' % label)
        if all('val_ema_top1' in r for r in records):
            ax.plot(epochs, [100 * (1 - r['val_ema_top1']) for r in records], ':',
                    color=color, linewidth=2, label='%s val, moving average' % label)
    ax.set_xlabel('epoch')
    ax.set_ylabel('error (%)')
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)


def plot(panels, output):
    """One figure, side by side, of `panels`: a list of (logs, labels, title); saved as PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.5), squeeze=False)
    for ax, (logs, labels, title) in zip(axes[0], panels):
        draw(ax, logs, labels, title)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
