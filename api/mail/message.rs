//! The e-mail itself: plain text and HTML (readable without images), each
//! ticket's QR code inline as a PNG. Headers go through lettre's typed
//! builders, so nothing a buyer typed can add a header.

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::Message;
use time::macros::format_description;
use uuid::Uuid;

use super::content::OrderMail;
use super::outbox::MailKind;

/// The same for every attempt at one outbox row, so a resend after a crash is
/// recognisably the same message.
pub fn message_id(outbox_id: Uuid, from: &Mailbox) -> String {
    format!("<{outbox_id}@{}>", from.email.domain())
}

pub fn build(
    outbox_id: Uuid,
    kind: MailKind,
    mail: &OrderMail,
    from: &Mailbox,
    recipient: &str,
) -> Result<Message, String> {
    // Names never hold control characters (BuyerName), and lettre panics on
    // them: should one come from elsewhere, it becomes a space.
    let name: String = mail.buyer_name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let to = Mailbox::new(
        Some(name),
        recipient.parse().map_err(|_| "the recipient's address is not one SMTP accepts".to_owned())?,
    );
    let subject = match kind {
        MailKind::OrderPaid => format!("Your tickets: {}", mail.event_name),
        MailKind::Resend => format!("Your tickets (again): {}", mail.event_name),
        MailKind::OrderRefunded => format!("Refunded: {}", mail.event_name),
    };
    let builder =
        Message::builder().message_id(Some(message_id(outbox_id, from))).from(from.clone()).to(to).subject(subject);
    let with_tickets = kind != MailKind::OrderRefunded && !mail.codes.is_empty();
    let text = SinglePart::plain(text(kind, mail, with_tickets));
    let html = SinglePart::html(html(kind, mail, with_tickets));
    let body = if with_tickets {
        let mut related = MultiPart::related().singlepart(html);
        for (i, code) in mail.codes.iter().enumerate() {
            let png = super::qr::png(code)?;
            related = related.singlepart(
                Attachment::new_inline(content_id(i)).body(png, ContentType::parse("image/png").expect("a MIME type")),
            );
        }
        MultiPart::alternative().singlepart(text).multipart(related)
    } else {
        MultiPart::alternative().singlepart(text).singlepart(html)
    };
    builder.multipart(body).map_err(|e| format!("building the message: {e}"))
}

fn content_id(i: usize) -> String {
    format!("ticket-{}@nts", i + 1)
}

fn when(mail: &OrderMail) -> String {
    mail.starts_at
        .to_offset(time::UtcOffset::UTC)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute] UTC"))
        .unwrap_or_else(|_| mail.starts_at.to_string())
}

fn intro(kind: MailKind) -> &'static str {
    match kind {
        MailKind::OrderPaid => "Thank you for your order. Here are your tickets.",
        MailKind::Resend => "You asked for your tickets again. Here they are.",
        MailKind::OrderRefunded => "Your order has been refunded; its tickets are no longer valid.",
    }
}

/// `2 x Adult, 1 x Child`.
fn tickets(mail: &OrderMail, times: &str) -> String {
    mail.lines.iter().map(|(name, n)| format!("{n} {times} {name}")).collect::<Vec<_>>().join(", ")
}

fn text(kind: MailKind, mail: &OrderMail, with_tickets: bool) -> String {
    let mut out = format!(
        "Hello {name},\n\n{intro}\n\n  Event:    {event}\n  When:     {when}\n  Where:    {venue}\n  Tickets:  {tickets}\n  {paid_label}  {amount}\n  Order:    {order}\n",
        name = mail.buyer_name,
        intro = intro(kind),
        event = mail.event_name,
        when = when(mail),
        venue = mail.venue,
        tickets = tickets(mail, "x"),
        paid_label = if kind == MailKind::OrderRefunded { "Refunded:" } else { "Paid:    " },
        amount = mail.amount,
        order = mail.order_id,
    );
    if let Some(link) = &mail.link {
        out.push_str(&format!("\nYour order and its QR codes, any time:\n{link}\n"));
    }
    if with_tickets {
        out.push_str("\nTicket codes (the QR codes in this e-mail hold the same codes):\n");
        for (i, code) in mail.codes.iter().enumerate() {
            out.push_str(&format!("  {}. {code}\n", i + 1));
        }
        out.push_str(
            "\nShow a ticket's QR code (or its code) at the door. Keep this e-mail: its link opens your order.\n",
        );
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn html(kind: MailKind, mail: &OrderMail, with_tickets: bool) -> String {
    let row = |label: &str, value: &str| {
        format!(
            "<tr><th style=\"text-align:left;padding:4px 16px 4px 0;color:#555;font-weight:normal\">{label}</th>\
             <td style=\"padding:4px 0\">{}</td></tr>",
            escape(value)
        )
    };
    let mut out = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Your tickets</title></head>\
         <body style=\"margin:0;padding:24px;background:#f4f4f5;font-family:Arial,Helvetica,sans-serif;color:#18181b\">\
         <div style=\"max-width:560px;margin:0 auto;background:#fff;border-radius:8px;padding:24px\">",
    );
    out.push_str(&format!(
        "<h1 style=\"font-size:22px;margin:0 0 8px\">{}</h1><p>Hello {},</p><p>{}</p><table style=\"border-collapse:collapse;margin:8px 0 16px\">",
        escape(&mail.event_name),
        escape(&mail.buyer_name),
        intro(kind)
    ));
    out.push_str(&row("When", &when(mail)));
    out.push_str(&row("Where", &mail.venue));
    out.push_str(&row("Tickets", &tickets(mail, "×")));
    out.push_str(&row(if kind == MailKind::OrderRefunded { "Refunded" } else { "Paid" }, &mail.amount));
    out.push_str(&row("Order", &mail.order_id.to_string()));
    out.push_str("</table>");
    if let Some(link) = &mail.link {
        out.push_str(&format!(
            "<p><a href=\"{}\" style=\"display:inline-block;background:#1d4ed8;color:#fff;padding:10px 18px;\
             border-radius:6px;text-decoration:none\">Open your order</a></p>",
            escape(link)
        ));
    }
    if with_tickets {
        for (i, code) in mail.codes.iter().enumerate() {
            out.push_str(&format!(
                "<div style=\"border-top:1px solid #e4e4e7;padding:16px 0;text-align:center\">\
                 <p style=\"margin:0 0 8px;font-weight:bold\">Ticket {n} of {total}</p>\
                 <img src=\"cid:{cid}\" alt=\"QR code of ticket {n}\" width=\"220\" height=\"220\" style=\"display:block;margin:0 auto\">\
                 <p style=\"font-family:monospace;font-size:11px;word-break:break-all;color:#555\">{code}</p></div>",
                n = i + 1,
                total = mail.codes.len(),
                cid = content_id(i),
                code = escape(code),
            ));
        }
        out.push_str("<p style=\"color:#555;font-size:13px\">Show a ticket's QR code (or its code) at the door. Keep this e-mail: its link opens your order.</p>");
    }
    out.push_str("</div></body></html>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::OrderStatus;

    fn mail(name: &str) -> OrderMail {
        OrderMail {
            order_id: Uuid::new_v4(),
            status: OrderStatus::Paid,
            buyer_name: name.into(),
            event_name: "Night <b>".into(),
            venue: "Hall".into(),
            starts_at: time::macros::datetime!(2099-01-01 20:00 UTC),
            lines: vec![("General".into(), 2)],
            amount: "GBP 19.98".into(),
            codes: vec!["AAAAAAAAAAAAAAAAAAAAAAAA.x".into(), "BBBBBBBBBBBBBBBBBBBBBBBB.y".into()],
            link: Some("https://t.example.com/order.html#id=1&secret=s".into()),
        }
    }

    fn headers(message: &Message) -> String {
        let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
        raw.split("\r\n\r\n").next().unwrap().to_owned()
    }

    #[test]
    fn a_name_cannot_add_a_header() {
        let from: Mailbox = "Tickets <tickets@example.com>".parse().unwrap();
        let id = Uuid::new_v4();
        let message =
            build(id, MailKind::OrderPaid, &mail("Eve\r\nBcc: x@evil.example"), &from, "eve@example.com").unwrap();
        let head = headers(&message);
        assert!(!head.lines().any(|l| l.to_ascii_lowercase().starts_with("bcc")), "{head}");
        assert_eq!(message.envelope().to().len(), 1);
        assert!(head.contains(&format!("Message-ID: <{id}@example.com>")), "{head}");
    }

    #[test]
    fn the_html_escapes_what_buyers_and_organisers_typed() {
        let m = mail("<script>alert(1)</script>");
        let html = html(MailKind::OrderPaid, &m, true);
        assert!(!html.contains("<script>") && !html.contains("Night <b>"), "{html}");
        assert!(html.contains("cid:ticket-2@nts"));
        let text = text(MailKind::OrderPaid, &m, true);
        assert!(
            text.contains("AAAAAAAAAAAAAAAAAAAAAAAA.x")
                && text.contains("https://t.example.com/order.html#id=1&secret=s")
        );
    }

    #[test]
    fn every_line_of_the_order_is_listed() {
        let m = OrderMail { lines: vec![("Adult".into(), 2), ("Child <12".into(), 1)], ..mail("Grace") };
        assert!(text(MailKind::OrderPaid, &m, false).contains("Tickets:  2 x Adult, 1 x Child <12\n"));
        assert!(html(MailKind::OrderPaid, &m, false).contains("2 × Adult, 1 × Child &lt;12"));
    }
}
