"""The reliable stream from one peer to this node: in-order delivery, duplicates, ack state.

Frames are delivered in seq order; a frame ahead of the next expected one is held (at most
`window` seqs ahead) until the gap is filled; anything already delivered or held is a
duplicate. Every reliable frame received, duplicate or not, calls for an ack.
"""

from __future__ import annotations

from .frames import Frame, seq_from_wire, seq_to_wire

__all__ = ["ReceiveStream"]


class ReceiveStream:
    __slots__ = ("_window", "held", "next_seq")

    def __init__(self, window: int) -> None:
        self._window = window
        self.next_seq = 1
        self.held: dict[int, Frame] = {}

    def reset(self) -> None:
        self.next_seq = 1
        self.held.clear()

    def accept(self, frame: Frame) -> list[Frame]:
        """The frames now deliverable in order (empty for a duplicate or a held frame)."""
        seq = seq_from_wire(frame.header.seq, self.next_seq)
        expected = self.next_seq
        if seq != expected:
            if expected < seq < expected + self._window:
                self.held.setdefault(seq, frame)
            return []
        out = [frame]
        seq += 1
        held = self.held
        while held:
            nxt = held.pop(seq, None)
            if nxt is None:
                break
            out.append(nxt)
            seq += 1
        self.next_seq = seq
        return out

    @property
    def ack_wire(self) -> int:
        """The cumulative ack to send: the last seq delivered, in wire form."""
        return seq_to_wire(self.next_seq - 1)

    def sack(self, limit_bytes: int) -> bytes:
        """The selective-ack bitmap of held frames (bit i = seq next_seq + 1 + i)."""
        if not self.held:
            return b""
        base = self.next_seq + 1
        bits = bytearray(min((max(self.held) - base) // 8 + 1, limit_bytes))
        for seq in self.held:
            offset = seq - base
            if offset >> 3 < len(bits):
                bits[offset >> 3] |= 0x80 >> (offset & 7)
        return bytes(bits)
