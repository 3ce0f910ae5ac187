"""``shoal``: the command line, a client of the HTTP API and nothing more.

It imports nothing of the worker or the API: every command is HTTP calls to
``$SHOAL_API_URL`` with ``$SHOAL_API_KEY`` as a Bearer token.

* :mod:`~shoal_cli.main` – the argument parser and :func:`main`, the entry
  point of the ``shoal`` script;
* :mod:`~shoal_cli.client` – the API client: requests, the API's errors,
  polling, and downloads checked against their size and SHA-256;
* :mod:`~shoal_cli.jobs` – ``narrate``, ``status``, ``jobs``, ``cancel``;
* :mod:`~shoal_cli.keys` – ``hash-key`` (offline);
* :mod:`~shoal_cli.books` – ``book``: upload a book, follow its chapters,
  download the audiobook;
* :mod:`~shoal_cli.__main__` – ``python -m shoal_cli``.

Errors end the command with a message on stderr and an exit status::

    CliError          exit 1 unless it says otherwise
    ├── Unreachable   no answer from the API (connection refused, timeout)
    └── Refused       the API answered 4xx/5xx; ``status``, ``retry_after``

Exit status: 0 done; 1 the API refused or could not be reached; 2 bad usage;
3 the job or book failed or was canceled; 130 interrupted.
"""
