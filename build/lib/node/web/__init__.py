"""The console: the pages brokers and admins use in a browser, served by the node on the
same port as its API (:mod:`node.web.site`). Every page goes through
:mod:`node.web.views`, which checks the session, the role and the CSRF token.
"""
