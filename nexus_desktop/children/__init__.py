"""Child processes: one launcher (``launch``) that starts every child contained, one supervisor
(``supervised.ChildProcess``) that talks JSON lines to it, and one way to describe an exit."""
