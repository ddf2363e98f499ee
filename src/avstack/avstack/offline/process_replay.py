"""Process replay (after openpilot's): the stack's outputs on a fixed input, held against stored references.

A small generated bag (the synthetic scene with a car parked in the ego lane
ahead, 6 s: a pure function of time, nothing random) goes through
``avstack eval`` with the shipped config and
checkpoint; its fused tokens, trajectories and takeover requests are reduced
to a reference document (``test/references/process_replay.json``). A change
that alters what perception, the planner or the critic output shows up as a
readable difference: which topic, how many messages differ, the largest
waypoint change.

Robust to the last bits of floating point, which differ between CPUs (SIMD
kernels): every value is stored rounded to a stated resolution, each topic's
digest is taken over those rounded values (the commit that changes outputs
shows the new digests), and the comparison is a tolerance comparison, so a
digest that differs by a rounding boundary alone still passes. Deterministic
on one machine: eval runs every core in stamp order with one torch thread.

    python -m avstack.offline.process_replay check test/references/process_replay.json
    python -m avstack.offline.process_replay update test/references/process_replay.json   (make update-refs)

Exit codes: 0 outputs match (or references written), 1 outputs differ, 2 usage or an unreadable reference.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avstack.bag.codec import deserialize
from avstack.bag.reader import open_bag
from avstack.commands.options import CommandParser
from avstack.offline.evaluate import OUTPUT_BAG, evaluate
from avstack.offline.stack import OfflineConfig
from avstack.runtime.paths import default_config
from avstack.synthetic.scene import Box, SyntheticScene
from avstack.synthetic.bag import START_NS, SyntheticBagSpec, write_synthetic_bag
from stack_common import topics
from stack_common.constants import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from stack_common.takeover import msg_to_takeover
from stack_common.tokens import Modality, cloud_to_tokens
from stack_common.trajectory import path_to_trajectory

FORMAT = 1
BAG = SyntheticBagSpec(duration_s=6.0)
# A lighter sweep than the default (the run takes seconds), and a car parked in the ego lane just ahead (its
# rear 4.25 m from base_link): every plan meets it, so the critic stays in start-up until startup_timeout_s
# (5 s after the first plan) and then requests a takeover for the collision, whatever the model plans; the
# references hold that takeover event.
PARKED_IN_LANE = Box(6.5, 0.0, 4.5, 1.9, 1.5)
SCENE = {'azimuths': 1000, 'boxes': SyntheticScene.boxes + (PARKED_IN_LANE,)}
# Stored resolution and the tolerance the comparison allows (the last bits of a CPU's float kernels are far below).
WAYPOINT_RESOLUTION_M = 1e-4               # positions (m) and headings (rad) of trajectory waypoints
WAYPOINT_TOLERANCE_M = 1e-3
TOKEN_DIGITS = 6                           # significant digits of the token statistics
TOKEN_TOLERANCE = 1e-4                     # relative
TOPICS = (topics.FUSED_TOKENS, topics.TRAJECTORY, topics.TAKEOVER_REQUEST)


# ------------------------------------------------------------------------------------------- the run

def run_stack(workdir: Path) -> dict[str, list[dict]]:
    """Generate the bag, run ``avstack eval`` over it, return each output topic's messages reduced to values."""
    bag = write_synthetic_bag(workdir / 'bag', BAG, SyntheticScene(**SCENE))
    evaluate(bag, workdir / 'eval', OfflineConfig.load(default_config()), plots=False)
    outputs: dict[str, list[dict]] = {topic: [] for topic in TOPICS}
    with open_bag(workdir / 'eval' / OUTPUT_BAG) as output:
        for message in output.messages(TOPICS):
            msg = deserialize(message.data, message.type_name)
            outputs[message.topic].append(REDUCE[message.topic](msg, message.log_time_ns))
    return outputs


def _tokens(msg, log_time_ns: int) -> dict:
    tokens = cloud_to_tokens(msg)
    entry = {'stamp_ns': tokens.stamp_ns - START_NS, 'count': len(tokens)}
    for modality in Modality:
        mine = tokens.modality == modality
        embedding = tokens.embedding[mine].astype(np.float64)
        anchors = tokens.anchors[mine].astype(np.float64)
        placed = np.isfinite(anchors).all(axis=1)
        entry[modality.name.lower()] = [int(mine.sum()), int(placed.sum()), _sig(anchors[placed].sum()),
                                        _sig(embedding.sum()), _sig(np.abs(embedding).sum()),
                                        _sig((embedding ** 2).sum())]
    return entry


def _trajectory(msg, log_time_ns: int) -> dict:
    trajectory = path_to_trajectory(msg)
    points = np.column_stack([trajectory.t_s, trajectory.xy, trajectory.heading])
    return {'stamp_ns': trajectory.stamp_ns - START_NS,
            'waypoints': np.round(points / WAYPOINT_RESOLUTION_M).astype(np.int64).tolist()}


def _takeover(msg, log_time_ns: int) -> dict:
    stamp_ns, reasons = msg_to_takeover(msg)
    return {'stamp_ns': stamp_ns - START_NS, 'reasons': [r.check for r in reasons]}


REDUCE = {topics.FUSED_TOKENS: _tokens, topics.TRAJECTORY: _trajectory, topics.TAKEOVER_REQUEST: _takeover}


def _sig(value: float) -> float:
    return float(f'{value:.{TOKEN_DIGITS}g}')


# -------------------------------------------------------------------------------------- references

def reference_document(outputs: dict[str, list[dict]]) -> dict:
    return {
        'format': FORMAT,
        'input': {'bag': f'synthetic scene ({SCENE["azimuths"]} azimuths, a car parked in the ego lane '
                         f'{PARKED_IN_LANE.x_m:g} m ahead), {BAG.duration_s:g} s, camera and lidar '
                         f'{BAG.camera_hz:g} Hz, odometry {BAG.odometry_hz:g} Hz',
                  'config': 'config/stack.yaml', 'checkpoint': 'the shipped default'},
        'resolution': {'waypoints': f'{WAYPOINT_RESOLUTION_M:g} m and rad (stored as integer multiples)',
                       'tokens': f'{TOKEN_DIGITS} significant digits of per-modality sums: token count, placed '
                                 'anchors, anchor sum, embedding sum, |embedding| sum, embedding^2 sum'},
        'digests': {topic: digest(messages) for topic, messages in outputs.items()},
        'outputs': outputs,
    }


def dumps(document: dict) -> str:
    """The reference as JSON with one line per message, so a diff of the file shows which messages changed."""
    head = json.dumps({k: v for k, v in document.items() if k != 'outputs'}, indent=1)
    outputs = ',\n'.join(f'  {json.dumps(topic)}: [\n' + ',\n'.join(
        '   ' + json.dumps(m, separators=(', ', ': ')) for m in messages) + '\n  ]'
        for topic, messages in document['outputs'].items())
    return head[:-2] + ',\n "outputs": {\n' + outputs + '\n }\n}\n'


def digest(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TopicDifference:
    topic: str
    reference_count: int
    current_count: int
    differing: int                   # messages present in both whose values are out of tolerance
    detail: str                      # the largest change

    def describe(self) -> str:
        counts = (f'{self.current_count} messages (reference {self.reference_count})'
                  if self.current_count != self.reference_count else f'{self.current_count} messages')
        return f'{self.topic}: {counts}, {self.differing} differ; {self.detail}'


def compare(reference: dict, current: dict) -> list[TopicDifference]:
    """Topic by topic, within tolerance; an empty list means the outputs match."""
    differences = []
    for topic in TOPICS:
        old, new = reference['outputs'].get(topic, []), current['outputs'].get(topic, [])
        old_by_stamp, new_by_stamp = _by_stamp(old), _by_stamp(new)
        common = sorted(set(old_by_stamp) & set(new_by_stamp))
        worst, differing = (0.0, ''), 0
        for stamp in common:
            change = CHANGE[topic](old_by_stamp[stamp], new_by_stamp[stamp])
            if change[0] > 0:
                differing += 1
                worst = max(worst, change, key=lambda c: c[0])
        unmatched = len(set(old_by_stamp) ^ set(new_by_stamp))
        if differing or unmatched:
            detail = worst[1] or 'no common message changed'
            if unmatched:
                detail += f'; {unmatched} message stamp(s) only on one side'
            differences.append(TopicDifference(topic, len(old), len(new), differing, detail))
    return differences


def _by_stamp(messages: list[dict]) -> dict[tuple[int, int], dict]:
    """Messages by (stamp, how many came before with that stamp): one update may publish two."""
    keyed, seen = {}, {}
    for message in messages:
        n = seen[message['stamp_ns']] = seen.get(message['stamp_ns'], -1) + 1
        keyed[(message['stamp_ns'], n)] = message
    return keyed


def _waypoint_change(old: dict, new: dict) -> tuple[float, str]:
    a, b = np.asarray(old['waypoints'], float), np.asarray(new['waypoints'], float)
    if a.shape != b.shape:
        return np.inf, f'a plan of {len(b)} waypoints instead of {len(a)} at stamp +{new["stamp_ns"] / 1e9:.2f} s'
    moved = np.hypot(*(b[:, 1:3] - a[:, 1:3]).T) * WAYPOINT_RESOLUTION_M
    turned = np.abs(b[:, 3] - a[:, 3]) * WAYPOINT_RESOLUTION_M
    index = int(np.argmax(moved))
    if moved[index] <= WAYPOINT_TOLERANCE_M and turned.max() <= WAYPOINT_TOLERANCE_M:
        return 0.0, ''
    return float(max(moved[index], turned.max())), (
        f'largest waypoint change {moved[index]:.3f} m (t={a[index, 0] * WAYPOINT_RESOLUTION_M:.1f} s of the plan '
        f'at stamp +{new["stamp_ns"] / 1e9:.2f} s), heading {turned.max():.3f} rad')


def _token_change(old: dict, new: dict) -> tuple[float, str]:
    worst, where = 0.0, ''
    for key in ('count', *(m.name.lower() for m in Modality)):
        a, b = np.atleast_1d(np.asarray(old[key], float)), np.atleast_1d(np.asarray(new[key], float))
        scale = np.maximum(np.abs(a), 1.0)
        relative = float(np.max(np.abs(b - a) / scale))
        if relative > worst:
            worst, where = relative, key
    if worst <= TOKEN_TOLERANCE:
        return 0.0, ''
    return worst, f'largest token change {worst:.2e} (relative, {where} tokens at stamp +{new["stamp_ns"] / 1e9:.2f} s)'


def _takeover_change(old: dict, new: dict) -> tuple[float, str]:
    if old['reasons'] == new['reasons']:
        return 0.0, ''
    return 1.0, f'takeover at +{new["stamp_ns"] / 1e9:.2f} s: reasons {new["reasons"]} instead of {old["reasons"]}'


CHANGE = {topics.FUSED_TOKENS: _token_change, topics.TRAJECTORY: _waypoint_change,
          topics.TAKEOVER_REQUEST: _takeover_change}


def current_document() -> dict:
    with tempfile.TemporaryDirectory(prefix='process_replay_') as workdir:
        return reference_document(run_stack(Path(workdir)))


# ------------------------------------------------------------------------------------------- the CLI

def main(argv=None) -> int:
    parser = CommandParser(
        prog='python -m avstack.offline.process_replay',
        description='Run the stack over the generated reference bag with the shipped config and checkpoint and '
                    'hold its tokens, trajectories and takeover requests against stored references.',
        epilog='After a change that alters outputs on purpose (a new checkpoint), `make update-refs` rewrites the '
               'references; commit them with the change.\nexit codes: 0 outputs match (or references written), '
               '1 outputs differ, 2 usage or an unreadable reference.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, text in (('check', 'compare this code\'s outputs with REFERENCE'),
                       ('update', 'write this code\'s outputs to REFERENCE')):
        commands.add_parser(name, help=text, description=text).add_argument('reference', type=Path)
    args = parser.parse_args(argv)
    if args.command == 'update':
        document = current_document()
        args.reference.parent.mkdir(parents=True, exist_ok=True)
        args.reference.write_text(dumps(document))
        print(f'wrote {args.reference}: ' + ', '.join(f'{t} {len(m)} messages, digest {document["digests"][t]}'
                                                      for t, m in document['outputs'].items()))
        return EXIT_OK
    try:
        reference = json.loads(args.reference.read_text())
    except (OSError, ValueError) as error:
        print(f'process_replay: cannot read {args.reference}: {error}; write it with `make update-refs`',
              file=sys.stderr)
        return EXIT_USAGE
    differences = compare(reference, current_document())
    for difference in differences:
        print(difference.describe())
    if differences:
        print('outputs differ from the references; if intended, run `make update-refs` and commit the new digests')
        return EXIT_FAILURE
    print(f'outputs match {args.reference}')
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
