"""The engine: a plan of the recipe, run by doit.

``plan`` assesses every step and group once; ``context`` holds what a run's steps
share; ``build`` restores or generates one step; ``groups`` merges members;
``tasks`` is the doit loader and reporter; ``noop`` the fast path; ``workflow``
the facade (run, plan, clean, abandon).
"""
