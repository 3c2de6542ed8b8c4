"""The four installation stages, one module each, in pipeline order: :mod:`.download`,
:mod:`.dependencies`, :mod:`.build_envs`, :mod:`.register`."""
