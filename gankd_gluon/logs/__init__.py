"""Training logs: the line formatter (the contract), the parser, and the comparison report.

- :mod:`.format`: one function per line kind, as the published logs print them.
- :mod:`.parse`: reads the published logs and ours into :class:`.parse.ParsedLog`, with
  :mod:`.lines` (one (pattern, handler) pair per line kind), :mod:`.segments` (stages,
  divergences, timer glitches, resumed blocks joined) and :mod:`.records` (the dataclasses).
- :mod:`.report`: ``compare_logs`` (report.md + plots) and ``summarize_log``, with
  :mod:`.numbers` (what is compared), :mod:`.markdown` (the text, from templates) and
  :mod:`.plots` (the figures).
- :mod:`.gallery`: regenerates ``logs/README.md`` and ``logs/gallery/``.
"""
from .parse import ParsedLog, parse_lines, parse_log  # noqa: F401

__all__ = ["ParsedLog", "parse_lines", "parse_log"]
