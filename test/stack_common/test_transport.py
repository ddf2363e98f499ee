"""The stack's Fast DDS transport profile: shipped, loadable, and a user's own choice wins."""

import xml.etree.ElementTree as ElementTree

from stack_common.transport import PROFILE_FILE, PROFILE_VARIABLE, configure_dds_transport

NS = {'dds': 'http://www.eprosima.com'}


def test_the_profile_carries_a_sensor_message_in_one_shared_memory_segment():
    root = ElementTree.parse(PROFILE_FILE).getroot()
    shm = next(d for d in root.iterfind('.//dds:transport_descriptor', NS) if d.findtext('dds:type', '', NS) == 'SHM')
    assert int(shm.findtext('dds:maxMessageSize', '0', NS)) >= 16 * 2**20   # a 4K image is 25 MB raw; ours 3 MB
    assert int(shm.findtext('dds:segment_size', '0', NS)) >= int(shm.findtext('dds:maxMessageSize', '0', NS))
    participant = root.find('.//dds:participant', NS)
    assert participant.get('is_default_profile') == 'true'
    assert participant.findtext('.//dds:useBuiltinTransports', '', NS) == 'false'
    used = [t.text for t in participant.iterfind('.//dds:userTransports/dds:transport_id', NS)]
    assert shm.findtext('dds:transport_id', '', NS) in used and len(used) == 2   # and UDP for discovery


def test_the_processes_load_it_unless_the_user_chose_a_profile():
    assert configure_dds_transport({})[PROFILE_VARIABLE] == str(PROFILE_FILE)
    assert configure_dds_transport({PROFILE_VARIABLE: '/mine.xml'})[PROFILE_VARIABLE] == '/mine.xml'
