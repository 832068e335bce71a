"""Data loaders with validation: lung X-rays (``lung``), AG News (``agnews``), ScienceQA (``scienceqa``).

Each reads from ``paths.data_dir()`` (offline) or its original source (full profile), and raises
``errors.DataError`` naming the file, the problem and the fix.
"""
