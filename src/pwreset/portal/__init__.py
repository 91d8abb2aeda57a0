"""The developer portal (``/portal``): partner developers sign up, get a sandbox organisation, make
apps and keys, read and download the API description, and see what their sandbox "sent".

Layers as in every domain: ``models`` (tables), ``repository`` (queries, scoped to the caller's
organisation), ``service`` (the logic; the caller owns the transaction), ``routes`` (thin HTTP edge),
``forms`` (input and CSRF, WTForms), ``catalogue`` (the API description, split per API, and the
Postman collection made from it), ``templates/`` and ``static/`` (server-rendered pages).
"""
