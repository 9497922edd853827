"""Slack interactivity: the Approve and Reject buttons of Slack notifications.

Slack POSTs each click to /integrations/slack/actions/. The request is verified
(`X-Slack-Signature`: HMAC-SHA256 of "v0:<timestamp>:<body>" with the app's signing secret,
timestamps older than 5 minutes refused; slack_sdk's SignatureVerifier), the Slack user is
mapped to the portal account they linked while logged in (`notifications.ChatLink`, made by
the link page here: never by trusting a name in the payload), and the decision goes through
`approvals.transitions.checkpoint_decide` with a chat Credential: the same rules as the
review page (review role, four-eyes, quorum, the version of the action shown in the message,
allowed outcomes), plus the chat rule (high and critical risk are never decided from chat).
Reject asks for the reason in a modal (views.open, the bot token). What the clicker is told
goes back through the interaction's response_url, as a notification delivery."""
