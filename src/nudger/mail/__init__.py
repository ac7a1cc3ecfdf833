"""The edges to a mail server: the Mailbox protocol, folder layout, the memory twin, IMAP."""
