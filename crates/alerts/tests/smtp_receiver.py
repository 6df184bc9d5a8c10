"""The handler of the real SMTP server (aiosmtpd) that tests/notify_receivers.rs starts:

    python -m aiosmtpd -n -l 127.0.0.1:PORT -c smtp_receiver.Handler DIR

It writes every message it accepts to DIR/NNNN.json before it answers 250: the envelope, the
raw content, and the headers and body as a mail reader sees them (decoded by Python's email
package: quoted-printable, base64, RFC 2047 words). A file is written under another name,
then renamed, so a reader never sees half of one. It
refuses the recipients `reject-permanent@…` (550) and `reject-transient@…` (451), so that a
test can see how each kind of refusal is classified.
"""

import email
import email.policy
import json
import os


class Handler:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("the directory for received messages is required")
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0]
        if local == "reject-permanent":
            return "550 5.1.1 no such mailbox here"
        if local == "reject-transient":
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, "%04d.json" % self.count)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with open(path + ".part", "w", encoding="utf-8") as f:
            json.dump(
                {
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "content": envelope.content.decode("utf-8", "replace"),
                    "headers": {k.lower(): str(v) for k, v in message.items()},
                    "content_type": message.get_content_type(),
                    "charset": message.get_content_charset(),
                    "body": message.get_content(),
                },
                f,
            )
        os.replace(path + ".part", path)
        return "250 Message accepted for delivery"
