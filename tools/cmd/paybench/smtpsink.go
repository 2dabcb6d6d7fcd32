package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
)

// smtpSinkCmd serves SMTP on -listen and discards every message: the
// gateway's mail consumer does its real work (render, SMTP conversation,
// delivery record) against a relay that costs the shared machine next to
// nothing, and never reaches someone else's inbox on the default port.
func smtpSinkCmd(args []string) error {
	fs := flag.NewFlagSet("smtp-sink", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("smtp-sink listening on %s\n", ln.Addr())
	var mails atomic.Int64
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		fmt.Printf("smtp-sink: %d mails discarded\n", mails.Load())
		_ = ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if strings.Contains(err.Error(), "use of closed network connection") {
				return nil
			}
			return err
		}
		go serveSMTP(c, &mails)
	}
}

// serveSMTP speaks just enough SMTP (RFC 5321) to take mail: EHLO/HELO,
// MAIL, RCPT, DATA, RSET, NOOP, QUIT; anything else is accepted too.
func serveSMTP(c net.Conn, mails *atomic.Int64) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	reply := func(s string) bool {
		_, err := w.WriteString(s + "\r\n")
		return err == nil && w.Flush() == nil
	}
	if !reply("220 paybench smtp-sink ESMTP") {
		return
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.TrimSpace(line))
		if i := strings.IndexAny(verb, " :"); i >= 0 {
			verb = verb[:i]
		}
		var ok bool
		switch verb {
		case "EHLO":
			ok = reply("250-paybench\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING")
		case "DATA":
			if !reply("354 end with <CRLF>.<CRLF>") {
				return
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
			}
			mails.Add(1)
			ok = reply("250 discarded")
		case "QUIT":
			reply("221 bye")
			return
		default:
			ok = reply("250 ok")
		}
		if !ok {
			return
		}
	}
}
