"""The module builder: "build me X" in chat becomes a tested module awaiting approval (issue 14).

- ``request``: refuses a request for something no module may do, before any code is generated
- ``template``: the module template and the plan/generate/repair prompts, in versions
- ``output``: the JSON schema of the generated files and the parser that checks an answer
- ``loop``: plan, generate, validate in the sandbox, repair (at most 3 repairs, the last fresh)
- ``store`` / ``tables``: every build and round (prompt, answer, diff, test report), migration v9
- ``service``: ``BuildService`` (``core.builds``), the one entry point for the chat, the gallery
  and ``nexus modules build``
"""
