"""Maintainers' tools, run from the checkout and never installed (the wheel holds ``publish``
and the builder only): ``python -m tools.sample`` writes fake upstream data (the shipped
samples in ``publish/samples/``, and any size for tests and ``bench/``), ``python -m
tools.infos`` writes ``dataset_infos.json``.

Imports go one way: ``sample`` (argilla-cleaned, and the command) uses ``sample_family``
(openbmb, h4-binarized); both use ``sample_text`` (text and row streams) and
``sample_files`` (Arrow batches and atomic files); all take the upstreams' schemas and
scales from the builder, ``ultrafeedback_kto``.
"""
