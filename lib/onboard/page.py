# The portal's pages for a person with a browser: the config form and the
# page that tells what a form post did. Loaded for such a request and let go
# of as the page is made (see _leave), so that setup mode holds none of this
# in RAM: not after a browser's visit, never for a setup done by an app (the
# JSON API).

from micropython import const

_PAGE = const("""<!DOCTYPE html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>%s</title>
<style>body{font-family:sans-serif;max-width:26em;margin:1em auto;padding:0 1em}
label,input,button{display:block;width:100%%;margin:.3em 0;box-sizing:border-box}
input{padding:.4em}</style>
</head><body><h1>%s</h1>%s</body></html>""")


def escape(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _leave():
    # this module out of sys.modules and off its package, as a page is made:
    # the function making it keeps what it needs while it runs (its module's
    # globals), and once it returns nothing holds the module (2 KB, 32-bit)
    from onboard.store import let_go

    let_go("page")


def form(portal):
    """The config page: a plain form, no JavaScript needed."""
    _leave()
    # (loops, not generators: each of those is one more function in RAM)
    options = ""
    for n in portal.scan():
        options += '<option value="%s">' % escape(n["ssid"])
    extra = ""
    for name, label, secret in portal.fields:
        extra += ('<label>%s<input name="%s" type="%s" autocomplete="off"></label>'
                  % (escape(label), name, "password" if secret else "text"))
    if portal.pop:
        extra += ('<label>Proof of possession<input name="pop" type="password" '
                  'autocomplete="off"></label>')
    body = ('<form method="post" action="/config"><input type="hidden" name="ui" value="1">'
            '<label>Wi-Fi network<input name="ssid" list="nets" required maxlength="32">'
            '</label><datalist id="nets">%s</datalist><label>Password'
            '<input name="pass" type="password" maxlength="64"></label>%s'
            '<button type="submit">Connect</button></form>') % (options, extra)
    return _PAGE % (portal.title, portal.title, body)


def result(title, status, msg):
    """The page a form post gets: what was done, and a way back when it failed."""
    _leave()
    back = "" if status == 200 else '<p><a href="/">Back</a></p>'
    return _PAGE % (title, title, "<p>%s</p>%s" % (escape(msg), back))
