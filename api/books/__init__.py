"""``/v1/books``: upload a book (EPUB, Markdown or text) and narrate it as a batch.

* :mod:`~api.books.router` – the route; HTTP only;
* :mod:`~api.books.schemas` – ``BookOptions`` (a form field) in, ``BookOut``
  (the chapter list and the batch) out;
* :mod:`~api.books.service` – read the upload within its limit, parse it into
  chapters inside the request (:func:`worker.books.parse_book`, pure), check
  the cover, and submit one batch item per chapter
  (:func:`api.batches.service.submit_batch`).

A file that is not a book, has no text, is too large or is an unsafe archive is
refused with a 4xx naming it (``BookRefused``, from the :class:`worker.books.BookError`
tree) before anything is stored.  Other errors are the API's (:mod:`api.errors`).
"""
