"""Reports of an analysed run: figures, HTML / Markdown / JSON documents, Chrome traces.

- :mod:`profiler.report.trace`: the step timeline in Chrome Trace Event Format (Perfetto,
  ``chrome://tracing``), and the lane and phase layout the timeline figure shares;
- :mod:`profiler.report.figures`: matplotlib figures (Agg canvas, no pyplot state);
- :mod:`profiler.report.build`: :func:`~profiler.report.build.build_report`, the report's
  sections, figures and tables;
- :mod:`profiler.report.render`: ``to_html`` (one self-contained file), ``to_markdown`` and
  ``to_json``, each also a ``Renderer``;
- :mod:`profiler.report.terminal`: the analysis as ``hydra-profiler analyze`` prints it;
- :mod:`profiler.report.outputs`: the renderer by a file's suffix, the default what-ifs, and
  :func:`~profiler.report.outputs.write_reports`.
"""
