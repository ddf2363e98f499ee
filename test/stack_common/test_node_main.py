"""run_node, the main() of every node process: several nodes on one executor, start-up objects frozen out of the
garbage collector before the first callback, a clean exit 0."""

import subprocess
import sys

PROCESS = '''
import gc
import rclpy
from rclpy.node import Node
from stack_common.node_main import run_node

ticked = set()

def make_nodes():
    nodes = [Node('first'), Node('second')]
    for node in nodes:
        node.create_timer(0.01, lambda n=node: tick(n))
    return nodes

def tick(node):
    if node.get_name() not in ticked:
        print(node.get_name(), 'frozen', gc.get_freeze_count(), flush=True)
    ticked.add(node.get_name())
    if len(ticked) == 2:
        rclpy.shutdown()

raise SystemExit(run_node(make_nodes))
'''


def test_run_node_spins_every_node_it_is_given_after_freezing_the_start_up_objects(ros_domain):
    result = subprocess.run([sys.executable, '-c', PROCESS], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(' frozen ') for line in result.stdout.splitlines())
    assert set(lines) == {'first', 'second'}
    # rclpy, numpy and the message types alone are tens of thousands of objects
    assert all(int(count) > 10_000 for count in lines.values()), lines
