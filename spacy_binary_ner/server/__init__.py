"""The teach server: a web page where people answer accept / reject while the
model learns (`python -m spacy_binary_ner teach`), or correct whole texts
(`correct`, `silver-to-gold`), `review` of where sessions disagree, and the
database commands `db-out`, `db-stats` and `db-drop`.

- `storage`: the answer store (SQLAlchemy 2 Core; SQLite or PostgreSQL);
- `engine`: the learning engine, the annotation loop in a process of its own
  (proposes questions, learns from answers, saves the model);
- `engine_client`: the server's end of the engine's pipe (the process, the
  sender and receiver threads);
- `book`: the question book: sessions, open questions, leases, the buffer;
- `worker`: the server's side (`Teacher`): answers checked and stored,
  questions handed out from the book;
- `settings`: the settings of `teach` and its two siblings, frozen
  dataclasses the command lines are made from;
- `app`: the Starlette app, the page and its JSON API;
- `review`: the `Reviewer`, which takes the `Teacher`'s place in the app to
  review a dataset's disagreements (no engine);
- `teach`, `correct`, `silver_to_gold`, `review`, `db_out`, `db_stats`,
  `db_drop`: the commands (`teach.run` serves the first three).

Needs the `server` extra: `pip install "spacy-binary-ner[server]"`.
"""
