"""``avstack reset``: ask the critic to clear a latched takeover request (its ``~/reset`` Trigger service)."""

import threading

from avstack.commands.options import Failure, add_command, seconds


def register(subparsers) -> None:
    parser = add_command(
        subparsers, 'reset', run, help='clear a latched takeover request (the critic\'s reset service)',
        description='Call the critic\'s std_srvs/Trigger service /critic_node/reset, as `ros2 service call '
                    '/critic_node/reset std_srvs/srv/Trigger` does, and print its answer. The critic clears the '
                    'request only once every check passes; otherwise it says which still fail.',
        epilog='exit codes: 0 cleared (or nothing to clear), 1 refused or no critic answered, 2 bad usage.')
    parser.add_argument('--node', default='/critic_node', help='the critic node\'s name (default /critic_node)')
    parser.add_argument('--timeout', type=seconds, default=10.0, metavar='S',
                        help='how long to wait for the service (default 10)')


def run(args) -> int:
    from rclpy.node import Node
    from std_srvs.srv import Trigger

    from avstack.runtime.ros import RosRuntime

    service = args.node.rstrip('/') + '/reset'
    with RosRuntime() as ros:
        node = ros.add(Node('avstack_reset', context=ros.context))
        client = node.create_client(Trigger, service)
        if not client.wait_for_service(timeout_sec=args.timeout):
            raise Failure(f'no service {service} within {args.timeout:g} s: is the stack running '
                          f'(on this ROS_DOMAIN_ID)?')
        answered = threading.Event()
        future = client.call_async(Trigger.Request())
        future.add_done_callback(lambda _: answered.set())
        if not answered.wait(args.timeout):
            raise Failure(f'{service} did not answer within {args.timeout:g} s')
        response = future.result()
    print(f'{service}: {response.message}')
    if not response.success:
        raise Failure(f'reset refused: {response.message}')
    return 0

