"""The os-ken application: thin handlers that turn switch events into Runtime calls."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.lib import addrconv
from os_ken.ofproto import ofproto_v1_3

from apps.flows import ETH_TYPE_LLDP
from apps.topology import SwitchPort
from controller import ofwire
from controller.channel import Channel

if TYPE_CHECKING:  # importing it loads the store (SQLAlchemy): too slow to wait for before answering switches
    from controller.runtime import Runtime

_LIVE = [CONFIG_DISPATCHER, MAIN_DISPATCHER]


def dpid_str(dpid: int) -> str:
    return f"{dpid:016x}"


def _switch_port(desc) -> SwitchPort:
    """os-ken's port description -> our value; a port is up unless admin-down or link-down."""
    ofp = ofproto_v1_3
    down = (desc.config & ofp.OFPPC_PORT_DOWN) or (desc.state & ofp.OFPPS_LINK_DOWN)
    name = desc.name.decode(errors="replace") if isinstance(desc.name, bytes) else desc.name
    return SwitchPort(name, desc.port_no, addrconv.mac.bin_to_text(desc.hw_addr)
                      if isinstance(desc.hw_addr, bytes) else desc.hw_addr, not down)


class SdnApp(app_manager.OSKenApp):
    """Started before the runtime exists, so that os-ken answers switches while the store loads.

    Handlers reach the runtime through `runtime()`, which waits until it is attached. They all run on
    this app's one event thread, so the events that come meanwhile wait in os-ken's queue, in order:
    a switch that connected early is served once the runtime is there, not forgotten.
    """

    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._runtime: Future[Runtime] = Future()
        self._channels: dict[int, Channel] = {}  # id(datapath) -> channel

    def attach(self, runtime: Runtime) -> None:
        """Hand over the loaded runtime; events held back until now are handled next."""
        self._runtime.set_result(runtime)

    def runtime(self) -> Runtime:
        """The runtime, once attached (blocks this app's event thread until then).

        A method, not a property: os-ken reads every attribute of an app when it registers it.
        """
        return self._runtime.result()

    def _channel(self, datapath) -> Channel | None:
        return self._channels.get(id(datapath))

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, _LIVE)
    def _port_desc(self, ev) -> None:
        msg = ev.msg
        datapath = msg.datapath
        if id(datapath) in self._channels:
            return
        ports = self.runtime().switch_ports(id(datapath), [_switch_port(p) for p in msg.body],
                                            bool(msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE))
        if ports is None:
            return
        # Full frames in packet-ins whatever the connection mode (a switch-listens channel starts at 0).
        datapath.send_msg(datapath.ofproto_parser.OFPSetConfig(datapath, 0, 0xFFFF))
        channel = Channel(dpid_str(datapath.id), datapath.send)
        self._channels[id(datapath)] = channel
        self.runtime().switch_connected(channel, ports)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    def _dead(self, ev) -> None:
        channel = self._channels.pop(id(ev.datapath), None)
        if channel is not None:
            self.runtime().switch_disconnected(channel)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    def _port_status(self, ev) -> None:
        msg = ev.msg
        channel = self._channel(msg.datapath)
        if channel is not None:
            self.runtime().port_changed(channel.dpid, _switch_port(msg.desc),
                                        deleted=msg.reason == ofproto_v1_3.OFPPR_DELETE)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, _LIVE)
    def _barrier(self, ev) -> None:
        channel = self._channel(ev.msg.datapath)
        if channel is not None:
            channel.on_barrier_reply(ev.msg.xid)

    @set_ev_cls(ofp_event.EventOFPErrorMsg, _LIVE)
    def _error(self, ev) -> None:
        msg = ev.msg
        channel = self._channel(msg.datapath)
        code = msg.code if msg.code is not None else getattr(msg, "exp_type", 0)
        text = ofwire.describe_error(msg.type, code or 0, getattr(msg, "experimenter", None))
        if channel is not None:
            channel.on_error(msg.xid, text)
        else:
            self.logger.warning("switch error before connect: %s", text)

    @set_ev_cls([ofp_event.EventOFPFlowStatsReply, ofp_event.EventOFPGroupDescStatsReply], MAIN_DISPATCHER)
    def _multipart(self, ev) -> None:
        """Raw bodies (ofwire.install_lean_flow_stats_parser), parsed by the thread that asked."""
        msg = ev.msg
        channel = self._channel(msg.datapath)
        if channel is not None:
            channel.on_multipart_reply(msg.xid, msg.body, bool(msg.flags & ofproto_v1_3.OFPMPF_REPLY_MORE))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    def _packet_in(self, ev) -> None:
        msg = ev.msg
        channel = self._channel(msg.datapath)
        data = bytes(msg.data)
        if channel is None:
            return
        if len(data) >= 14 and int.from_bytes(data[12:14], "big") == ETH_TYPE_LLDP:
            self.runtime().lldp_received(channel.dpid, msg.match["in_port"], data)
        else:  # what routers' flows hand the controller: in_port and the registers they set come in the match
            self.runtime().packet_in(channel.dpid, msg.table_id, dict(msg.match.items()), data)
