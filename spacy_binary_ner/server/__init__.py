"""The teach server: a web page where people answer accept / reject while the
model learns (`python -m spacy_binary_ner teach`), and the database commands
`db-out`, `db-stats` and `db-drop`.

- `storage`: the answer store (SQLAlchemy 2 Core; SQLite or PostgreSQL);
- `engine`: the learning engine, the annotation loop in a process of its own
  (proposes questions, learns from answers, saves the model);
- `worker`: the server's side of it (`Teacher`): answers stored, questions
  handed out from a buffer the engine fills;
- `app`: the Starlette app, the page and its JSON API;
- `teach`, `db_out`, `db_stats`, `db_drop`: the commands.

Needs the `server` extra: `pip install "spacy-binary-ner[server]"`.
"""
