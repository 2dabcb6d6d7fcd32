package xendit

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/paygate/paygate/internal/provider"
)

// CreatePayout creates a payout under r.Reference as Idempotency-key: the
// same withdrawal never pays twice, however often it is retried.
func (c *Client) CreatePayout(ctx context.Context, r provider.PayoutRequest) (provider.Payout, error) {
	if r.Reference == "" || len(r.Reference) > 100 {
		return provider.Payout{}, errors.New("xendit: a payout needs a reference of 1 to 100 characters")
	}
	body := CreatePayoutBody{
		ReferenceID: r.Reference, ChannelCode: PayoutChannelCode(r.BankCode),
		ChannelProperties: PayoutChannelProperties{AccountNumber: r.AccountNumber, AccountHolderName: r.AccountHolderName},
		Amount:            r.Amount, Description: r.Description, Currency: r.Currency,
	}
	var p PayoutObject
	if err := c.do(ctx, call{method: "POST", path: PathPayouts, key: r.Reference, body: body, out: &p}); err != nil {
		return provider.Payout{}, err
	}
	return payout(p), nil
}

// GetPayout reads a payout by Xendit's id.
func (c *Client) GetPayout(ctx context.Context, id string) (provider.Payout, error) {
	var p PayoutObject
	if err := c.do(ctx, call{method: "GET", path: PathPayouts + "/" + url.PathEscape(id), out: &p, notFound: true}); err != nil {
		return provider.Payout{}, err
	}
	return payout(p), nil
}

// payout is a payout in paygate's terms.
func payout(p PayoutObject) provider.Payout {
	out := provider.Payout{ID: p.ID, Reference: p.ReferenceID, Amount: p.Amount, Currency: p.Currency,
		FailureCode: p.FailureCode}
	switch p.Status {
	case PayoutStatusSucceeded:
		out.Status = provider.PayoutSucceeded
	case PayoutStatusFailed, PayoutStatusCancelled, PayoutStatusReversed:
		out.Status = provider.PayoutFailed
		if out.FailureCode == "" {
			out.FailureCode = p.Status
		}
		out.FailureReason = PayoutFailureReason(out.FailureCode)
	default:
		out.Status = provider.PayoutAccepted
	}
	return out
}

// listPageSize is the page size of the transactions list.
const listPageSize = 50

// ListSettled lists the payments and payouts Xendit completed (status
// SUCCESS) that were created in [from, to), following the list's pages.
func (c *Client) ListSettled(ctx context.Context, from, to time.Time) ([]provider.SettledTransaction, error) {
	var out []provider.SettledTransaction
	after := ""
	for {
		q := url.Values{}
		q.Add("types", TransactionTypePayment)
		q.Add("types", TransactionTypeDisbursement)
		q.Set("statuses", TransactionStatusSuccess)
		q.Set("created[gte]", FormatTime(from))
		q.Set("created[lte]", FormatTime(to))
		q.Set("limit", fmt.Sprint(listPageSize))
		if after != "" {
			q.Set("after_id", after)
		}
		var page TransactionList
		if err := c.do(ctx, call{method: "GET", path: PathTransactions + "?" + q.Encode(), out: &page}); err != nil {
			return nil, err
		}
		for _, t := range page.Data {
			if t.Status != TransactionStatusSuccess || !parseTime(t.Created).Before(to) {
				continue // the list's end is inclusive, the period's not
			}
			kind := provider.TransactionPayment
			if t.Type != TransactionTypePayment {
				kind = provider.TransactionPayout
			}
			out = append(out, provider.SettledTransaction{ID: t.ID, Kind: kind, Reference: t.ReferenceID,
				Amount: t.Amount, Currency: t.Currency, SettledAt: parseTime(t.Updated)})
		}
		if !page.HasMore || len(page.Data) == 0 {
			return out, nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
}
