"""The simulated machine's CPU: its cores' queue alone, then under the network, then
under a whole swarm."""
from __future__ import annotations

import pytest
from twisted.internet.protocol import Protocol

from tests.test_sim_net import _dial, _listen
from twisted_p2p import wire
from twisted_p2p.config import Common, PeerInfo, SwarmConfig
from twisted_p2p.settings import PeerSettings
from twisted_p2p.sim.clock import SimClock
from twisted_p2p.sim.cpu import CpuModel, Machine, Process
from twisted_p2p.sim.net import LinkModel, Network
from twisted_p2p.sim.swarm import simulate


def _processes(machine, costs, log):
    """Processes whose every turn costs its fixed seconds and notes when it ran what."""
    def make(name, cost):
        return Process(lambda work: log.append((name, machine.clock.seconds(), list(work))) or cost,
                       lambda work: None)
    return [make(name, cost) for name, cost in costs]


@pytest.mark.parametrize(("cores", "starts"), [(1, [0.0, 1.0, 3.0]), (2, [0.0, 0.0, 1.0]), (3, [0.0, 0.0, 0.0])])
def test_a_machine_runs_at_most_its_cores_turns_at_once_first_come_first_served(cores, starts):
    clock, log = SimClock(), []
    machine = Machine(clock, CpuModel(cores=cores))
    for process in _processes(machine, [("a", 1.0), ("b", 2.0), ("c", 0.5)], log):
        machine.give(process, "work")
    clock.run(until=lambda: len(log) == 3, limit=10)
    assert [when for _, when, _ in log] == starts


def test_work_given_during_a_turn_waits_for_the_next_one_behind_those_already_waiting():
    clock, log = SimClock(), []
    machine = Machine(clock, CpuModel(cores=1))
    a, b = _processes(machine, [("a", 1.0), ("b", 1.0)], log)
    machine.give(a, 1)
    machine.give(b, 1)
    machine.give(a, 2)  # a is running: its next turn takes this
    machine.give(a, 3)
    clock.run(until=lambda: len(log) == 3, limit=10)
    assert log == [("a", 0.0, [1]), ("b", 1.0, [1]), ("a", 2.0, [2, 3])]
    assert (a.turns, a.cpu, b.turns) == (2, 2.0, 1)


def _two_pairs(cores, **cpu):
    """Hosts .2 and .3 each connected to a listener of their own (.4 and .5)."""
    clock = SimClock()
    network = Network(clock, LinkModel(cpu=CpuModel(cores=cores, **cpu)))
    listeners = [_listen(network, address)[1] for address in ("10.0.0.4", "10.0.0.5")]
    senders = [_dial(network, "10.0.0.2", "10.0.0.4"), _dial(network, "10.0.0.3", "10.0.0.5")]
    return clock, network, senders, [accepted[0] for accepted in listeners]


@pytest.mark.parametrize(("cores", "arrivals"), [(1, [0.2, 0.3]), (2, [0.1, 0.1])])
def test_a_write_leaves_when_its_turn_is_over_and_every_turn_waits_for_a_core(cores, arrivals):
    # Every byte read or sent costs 0.1 ms: a sender's turn that writes 1,000 bytes takes
    # 0.1 s, and so does its receiver's turn that reads them.
    clock, network, senders, receivers = _two_pairs(cores, per_byte=1e-4)
    clock.run(until=lambda: not network.machine.busy, limit=10)
    start = clock.seconds()
    for sender in senders:
        sender.transport.write(b"x" * 1000)
    clock.run(until=lambda: all(r.received() == 1000 for r in receivers), limit=10)
    assert [round(r.chunks[0][0] - start, 9) for r in receivers] == arrivals
    clock.run(until=lambda: not network.machine.busy, limit=10)
    assert network.host("10.0.0.4").process.cpu == pytest.approx(0.1)


class Echo(Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def test_a_turn_costs_what_it_read_and_what_it_wrote_and_the_messages_it_framed():
    clock = SimClock()
    model = CpuModel(cores=4, per_turn=0.5, per_read=0.25, per_write=0.125, per_message=1.0, per_byte=0.001)
    network = Network(clock, LinkModel(cpu=model))
    reactor, accepted = _listen(network, "10.0.0.4")
    sender = _dial(network, "10.0.0.2", "10.0.0.4")
    clock.run(until=lambda: not network.machine.busy, limit=10)
    accepted[0].dataReceived = lambda data: accepted[0].transport.write(b"y" * 100)
    handshake = b"P2PFILESHARINGPROJ" + bytes(10) + (1001).to_bytes(4, "big")
    receiver = network.host("10.0.0.4").process
    before = receiver.cpu
    sender.transport.write(handshake)
    clock.run(until=lambda: sender.received() == 100, limit=10)
    # read: a turn, one connection, one message (the handshake), 32 bytes; wrote one, 100 bytes
    assert receiver.cpu - before == pytest.approx(0.5 + 0.25 + 1.0 + 0.032 + 0.125 + 0.1)
    assert model.turn_cost(reads=1, messages=1, read_bytes=32, writes=1, written_bytes=100) == pytest.approx(2.007)


def test_haves_cost_what_a_have_costs_and_the_other_messages_what_a_message_costs():
    clock = SimClock()
    model = CpuModel(cores=4, per_message=1.0, per_have=0.25)
    network = Network(clock, LinkModel(cpu=model))
    _, accepted = _listen(network, "10.0.0.4")
    sender = _dial(network, "10.0.0.2", "10.0.0.4")
    clock.run(until=lambda: not network.machine.busy, limit=10)
    handshake = b"P2PFILESHARINGPROJ" + bytes(10) + (1001).to_bytes(4, "big")
    haves = b"".join(wire.encode_have(index) for index in range(3))
    receiver = network.host("10.0.0.4").process
    before = receiver.cpu
    sender.transport.write(handshake + wire.INTERESTED + haves)
    clock.run(until=lambda: accepted[0].received() == 32 + 5 + 27, limit=10)
    clock.run(until=lambda: not network.machine.busy, limit=10)
    # the handshake and the interested are two messages, then three haves
    assert receiver.cpu - before == pytest.approx(2 * 1.0 + 3 * 0.25)
    assert model.turn_cost(reads=1, messages=5, read_bytes=0, writes=0, written_bytes=0, haves=3) == 2.75


def test_a_relay_process_forwards_each_segment_before_its_delay():
    clock = SimClock()
    network = Network(clock, LinkModel(delay=1.0, cpu=CpuModel(cores=4, per_byte=1e-4, relay=True)))
    _, accepted = _listen(network, "10.0.0.4")
    sender = _dial(network, "10.0.0.2", "10.0.0.4")
    clock.run(until=lambda: not network.machine.busy, limit=10)
    start = clock.seconds()
    sender.transport.write(b"x" * 1000)
    clock.run(until=lambda: accepted[0].received() == 1000, limit=10)
    # the sender's turn 0.1 s, the relay's (it reads and sends the 1,000 bytes) 0.2 s, the delay 1 s
    assert accepted[0].chunks[0][0] - start == pytest.approx(1.3)
    assert network.relay.cpu == pytest.approx(0.2)


def _config(leechers=2, size=64 * 1024, piece=16 * 1024):
    return SwarmConfig(Common(2, 1, 1, "file.dat", size, piece),
                       tuple(PeerInfo(1001 + n, "127.0.0.1", 7001 + n, n == 0) for n in range(leechers + 1)))


#: Slots filled as soon as they are free: the transfer is not paced by the p-second rounds.
EAGER = PeerSettings(pipeline=8, refill_slots=True)


def test_a_swarm_on_fewer_cores_takes_longer_and_its_peers_spend_cpu(tmp_path):
    cpu = dict(per_turn=2e-3, per_read=1e-3, per_write=1e-3, per_message=1e-3, per_byte=1e-7)
    results = {cores: simulate(_config(leechers=4, size=256 * 1024, piece=4096), tmp_path / str(cores), seed=3,
                               settings=EAGER, link=LinkModel(delay=0.0005, cpu=CpuModel(cores=cores, **cpu)))
               for cores in (1, 8)}
    for result in results.values():
        assert result.files_identical and not result.unfinished
        assert all(peer.cpu_seconds > 0 for peer in result.peers.values())
    assert results[1].completion > 1.5 * results[8].completion


def test_a_start_that_costs_cpu_delays_each_peer_by_its_share_of_the_cores(tmp_path):
    result = simulate(_config(leechers=2), tmp_path, seed=3, settings=EAGER,
                      link=LinkModel(cpu=CpuModel(cores=1, start=1.0)))
    assert result.files_identical and not result.unfinished
    # three starts of a second each on one core: the last peer listens after 3 s
    assert 3.0 <= result.completion < 3.5
