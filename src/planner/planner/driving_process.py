"""driving_process: perception_node and planner_node composed in one process, the token set handed over in memory.

The two nodes are the same classes as in their own processes: same names, same
parameters (``--params-file`` sections ``perception_node`` and
``planner_node``), same topics. What changes is the way from one to the other:
perception hands each token set straight to the planner's newest-set slot
(:meth:`PlannerNode.accept`), which plans it on the same thread at once,
and still publishes it on ``/perception/fused_tokens`` for recorders and
tools. That saves, per frame, serialising the tokens, DDS, a wake-up of
another process, the take and the conversion back, and one of the Python
processes sharing the cores. The planner gets no worker thread here: two
threads of one process contend for the GIL at each of the model's many small
operations (measured: half the frames dropped at 10 Hz), one thread does
perception then planning without waiting.

The critic is never composed in: it watches this process and must outlive it
(and it never imports torch). ``perception_node`` and ``planner_node`` as
separate processes stay available (``avstack up --layout split``, the launch
file's ``layout:=split``) for debugging and for spreading over machines.
"""

from perception_llm.perception_node import PerceptionNode
from planner.planner_node import PlannerNode
from stack_common.node_main import run_node


def make_nodes(**node_kwargs) -> list:
    """The two nodes, perception's token sets going to the planner in memory (order: as data flows)."""
    perception = PerceptionNode(**node_kwargs)
    planner = PlannerNode(tokens_in_memory=True, **node_kwargs)
    perception.token_sink = planner.accept
    return [perception, planner]


def main(args=None) -> int:
    return run_node(make_nodes, args)


if __name__ == '__main__':
    raise SystemExit(main())
