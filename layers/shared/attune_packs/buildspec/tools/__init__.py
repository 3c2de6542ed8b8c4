"""The build's own tools, shipped inside the buildspec (standard library only, Python 3.8+).

The build-envs service packs this package into a zip application (sources without docstrings,
gzip, base64: CodeBuild caps an inline buildspec at 25,600 characters) that the buildspec unpacks
to ``$TOOLS`` and runs as ``python3 "$TOOLS" <command>`` (see :mod:`.cli`). One module per kind:

* :mod:`.python_env` / :mod:`.node_env`: what a built environment holds (its manifest), and the
  sha256 of its artifact, recorded beside it.
* :mod:`.pack_tests`: a pack's declared tests (pack.yaml ``testing``), run by the runner of each
  kind: :mod:`.script_runner`, :mod:`.unittest_runner` (with :mod:`.unittest_worker`, which runs
  inside the target interpreter), :mod:`.pytest_runner`; :mod:`.execution` holds what they share
  (the scrubbed environment, timeouts), :mod:`.results` the result formats and the summary.
* :mod:`.reporting`: the build's answer to its task token, and the cause of a failed build.
* :mod:`.interpreters`: finding the target Python on the build machine.

``attune_packs.buildspec.build_tools`` re-exports the public names for the layer's callers.
"""
