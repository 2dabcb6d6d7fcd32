package xendit

import "fmt"

// paymentFailureReasons are what a customer reads for Xendit's payment
// failure codes.
var paymentFailureReasons = map[string]string{
	"PAYMENT_EXPIRED":        "The payment was not made in time.",
	"INSUFFICIENT_BALANCE":   "The payment account had insufficient balance.",
	"DECLINED_BY_ISSUER":     "The card issuer declined the payment.",
	"DECLINED_BY_PROVIDER":   "The payment channel declined the payment.",
	"USER_CANCELLED":         "The payment was cancelled.",
	SessionCanceled:          "The payment was cancelled.",
	"CHANNEL_UNAVAILABLE":    "The payment channel was unavailable.",
	"ACCOUNT_ACCESS_BLOCKED": "The payment account is blocked.",
}

// payoutFailureReasons are what a customer reads for Xendit's payout
// failure codes.
var payoutFailureReasons = map[string]string{
	"INSUFFICIENT_BALANCE":       "The payment provider could not fund the payout; no money left your wallet.",
	"INVALID_DESTINATION":        "The bank account does not exist or cannot receive transfers.",
	"REJECTED_BY_CHANNEL":        "The bank refused the transfer.",
	"TEMPORARY_TRANSFER_ERROR":   "The bank was unavailable; please try again later.",
	"TRANSFER_ERROR":             "The transfer failed at the bank.",
	"UNKNOWN_BANK_NETWORK_ERROR": "The bank network failed to complete the transfer.",
	"DESTINATION_MAXIMUM_LIMIT":  "The amount exceeds what the bank account may receive.",
}

// PaymentFailureReason returns the customer's text for a payment failure
// code.
func PaymentFailureReason(code string) string {
	return reason(paymentFailureReasons, code, "The payment provider refused the payment.", "The payment failed (%s).")
}

// PayoutFailureReason returns the customer's text for a payout failure
// code.
func PayoutFailureReason(code string) string {
	return reason(payoutFailureReasons, code, "The bank refused the payout.", "The payout failed (%s).")
}

// reason is the text of code: its own, the fallback for no code, or the
// code named in unknown's format, so that a new code is still shown.
func reason(known map[string]string, code, none, unknown string) string {
	if r, ok := known[code]; ok {
		return r
	}
	if code == "" {
		return none
	}
	return fmt.Sprintf(unknown, code)
}
