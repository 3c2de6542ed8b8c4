"""The CodeBuild buildspec (``build_env.yml``), the build tools it carries (:mod:`.tools`) and
the bundling that embeds them (:mod:`.bundle`)."""
