# One small module per cloud profile; import only the one a product uses.
# A profile is data and a few functions; it never changes the runtime's
# state or writes the store. It hands the runtime outcomes:
#   check(fields, config, current) -> cloud fields from setup, checked
#   async start(rt) -> a link (dict): what to store first (checked values),
#       the MQTT login ("mqtt": (user, password, host, port, tls), None for
#       the config's), topics and birth messages, and when to come back
#       (renew_s); raises Rejected or Transient
#   downlink(cloud, topic, msg) -> None (for the application) or an outcome
# What they share is in onboard.cloud (loaded once a session starts).
# A profile may keep what only the session uses in a module of its own that
# its module __getattr__ loads (blynk: blynk_online), so setup mode, which
# holds the profile, does not hold that code too.
