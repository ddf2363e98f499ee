"""A simulation run keeps to its own DDS domain unless the user chose one."""

from avstack.sim.run import PRIVATE_DOMAINS, own_domain


def test_a_run_takes_a_private_domain_when_none_is_set(monkeypatch):
    monkeypatch.delenv('ROS_DOMAIN_ID', raising=False)
    domain = own_domain()
    assert PRIVATE_DOMAINS[0] <= domain < PRIVATE_DOMAINS[1]
    assert own_domain() == domain   # the nodes it starts inherit it


def test_a_run_keeps_the_users_domain(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', '7')
    assert own_domain() == 7
