"""Pack sources on the network (not AWS): HTTPS downloads bounded and checked against SSRF
(:mod:`.http`) and Git repositories over HTTPS (:mod:`.git`)."""
