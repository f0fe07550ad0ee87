package fuzz

import "strings"

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// seeds are inline messages besides parser/testdata: stream shapes
// (keep-alives, back-to-back messages, split bodies) and edge cases.
var seeds = []string{
	"\r\n\r\n",
	"\r\n",
	"\r\n\r\n\r\n",
	crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK-1\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: s1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n") +
		"\r\n\r\n" + crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bK-2\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: s2\nCSeq: 2 OPTIONS\nl: 3\n\nabc"),
	crlf("SIP/2.0 200 OK\nv: SIP/2.0/UDP a;branch=z9hG4bK-3, SIP/2.0/UDP b;branch=z9hG4bK-4\nRecord-Route: <sip:r1;lr>, <sip:r2;lr>\nRecord-Route: <sip:r3;lr>\nRecord-Route: \"x,y\" <sip:r4;lr>;p=1\nf: <sip:c@d>;tag=1\nt: <sip:a@b>;tag=2\ni: s3\nCSeq: 3 INVITE\nl: 0\n\n"),
	crlf("INVITE sip:[::1]:5060 SIP/2.0\nVia: SIP/2.0/UDP [::1]:5070;rport;branch=z9hG4bK-5\nFrom: <sip:u@[::1]>;tag=a\nTo: <sip:v@[::1]>\nCall-ID: v6@[::1]\nCSeq: 1 INVITE\nContact: <sip:u@[::1]:5070>\nMax-Forwards: 1\nContent-Length: 0\n\n"),
	crlf("INVITE sip:u@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-6\nFrom: <sip:c@d>;tag=1\nTo: <sip:u@h>\nCall-ID: mp\nCSeq: 1 INVITE\nContent-Type: multipart/mixed;boundary=xx\nContent-Length: 61\n\n--xx\nContent-Type: text/plain\n\nhello\n--xx\nContent-Type: text/x\n\n--xx--\n"),
	crlf("REGISTER sip:r SIP/2.0\nVia: SIP/2.0/TLS c:5061;branch=z9hG4bK-7\nFrom: <sip:u@r>;tag=1\nTo: <sip:u@r>\nCall-ID: reg\nCSeq: 7 REGISTER\nContact: *\nExpires: 0\nAuthorization: Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", response=\"00\"\nContent-Length: 0\n\n"),
	crlf("BYE sip:u@h SIP/2.0\nVia: SIP/2.0/UDP h\n ;branch=z9hG4bK-8\nFrom:\n <sip:c@d>\n ;tag=1\nTo: <sip:u@h>;tag=2\nCall-ID: folded\nCSeq: 2\n BYE\nRoute: <sip:p1;lr>,\n <sip:p2;lr>\nContent-Length: 0\n\n"),
	crlf("MESSAGE sip:u@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-9\nFrom: <sip:c@d>;tag=1\nTo: <sip:u@h>\nCall-ID: long\nCSeq: 1 MESSAGE\nX-Long: " + strings.Repeat("0123456789", 800) + "\nContent-Length: 0\n\n"),
	crlf("INVITE sip:u@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-10;received=1.2.3.4;rport=9\nFrom: \"a\\\"b\" <sip:c@d>;tag=1\nTo: u <sip:u@h>\nCall-ID: q\nCSeq: 1 INVITE\nContact: sip:c@d;expires=1, <sip:c@e>\nMax-Forwards: 0\n\nno content-length body"),
	crlf("ACK sip:u@h SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-11\nFrom: <sip:c@d>;tag=1\nTo: <sip:u@h>;tag=2\nCall-ID: ack\nCSeq: 1 ACK\nContent-Length: 4\n\nab"),
	crlf("SIP/2.0 100 \nVia: SIP/2.0/UDP h;branch=z9hG4bK-12\nFrom: <sip:c@d>;tag=1\nTo: <sip:u@h>\nCall-ID: trying\nCSeq: 1 INVITE\n\n"),
	crlf("INVITE tel:+15550100 SIP/2.0\nVia: SIP/2.0/SCTP gw;branch=z9hG4bK-13;maddr=224.0.0.1;ttl=1\nFrom: <tel:+15550199>;tag=1\nTo: <tel:+15550100>\nCall-ID: tel\nCSeq: 1 INVITE\nContent-Length: 0\n\n"),
	crlf("OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-14\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: dup\nCSeq: 1 OPTIONS\nContent-Length: 0\nContent-Length: 1\n\n"),
	"OPTIONS sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h;branch=z9hG4bK-15\nFrom: <sip:c@d>;tag=1\nTo: <sip:a@b>\nCall-ID: lf\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
}
