"""Publishing diagnostic_msgs/DiagnosticArray on /diagnostics (diagnostic_updater has no wheel)."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


class DiagnosticsPublisher:
    def __init__(self, node, hardware_id: str = "warpd"):
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._hw = hardware_id

    @property
    def publisher(self):
        """The /diagnostics publisher: a lifecycle node destroys it on cleanup."""
        return self._pub

    def publish(self, level: int, message: str, values: dict) -> None:
        if not self._node.context.ok():  # shutting down (SIGINT): nothing can be published
            return
        st = DiagnosticStatus()
        st.level = level
        st.name = f"{self._node.get_name()}"
        st.message = message
        st.hardware_id = self._hw
        st.values = [KeyValue(key=str(k), value=str(v)) for k, v in values.items()]
        arr = DiagnosticArray()
        arr.header.stamp = self._node.get_clock().now().to_msg()
        arr.status = [st]
        self._pub.publish(arr)


def parse(status: DiagnosticStatus) -> dict:
    """KeyValue list -> dict with numbers converted where they parse."""
    out = {}
    for kv in status.values:
        try:
            out[kv.key] = float(kv.value) if "." in kv.value or "e" in kv.value.lower() or kv.value.lower() == "nan" else int(kv.value)
        except ValueError:
            out[kv.key] = kv.value
    return out
