"""Print, as JSON, what TensorBoard's own reader (EventAccumulator) finds in a folder of event
files: {"scalars": {tag: [[step, value], ...]}, "histograms": {tag: [[step, count], ...]}}.

    python tests/tensorboard_events.py DIR

It runs as a process of its own: mxboard 0.1.0 defines its protobuf messages under
TensorBoard's names, so a process that has imported one cannot import the other.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator


def read(logdir):
    accumulator = event_accumulator.EventAccumulator(
        logdir, size_guidance={event_accumulator.SCALARS: 0,
                               event_accumulator.HISTOGRAMS: 0})  # 0: keep every event
    accumulator.Reload()
    tags = accumulator.Tags()
    return {
        'scalars': {tag: [[e.step, e.value] for e in accumulator.Scalars(tag)]
                    for tag in tags['scalars']},
        'histograms': {tag: [[e.step, e.histogram_value.num]
                             for e in accumulator.Histograms(tag)]
                       for tag in tags['histograms']},
    }


if __name__ == '__main__':
    json.dump(read(sys.argv[1]), sys.stdout)
