"""Local peers of the messaging providers: HTTP servers that speak the providers' own APIs.

`whatsapp.WhatsAppCloudPeer` answers the Graph API's messages endpoint and sends webhooks signed
with `X-Hub-Signature-256`; `twilio.TwilioPeer` answers Twilio's Messages and Calls resources and
sends callbacks signed with `X-Twilio-Signature`. Both record every request, can be told to fail
with 500 or 429 for a while, and have a small control API under `/_peer/` for tests and the demo.
They are test doubles of the providers' wire protocols, never of Recupero's own code.
"""
