package escrow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/keyescrow/keyescrow/internal/receipt"
	"github.com/keyescrow/keyescrow/internal/storage"
)

// A sidecar is a file stored and proven beside a copy, whose receipt
// records it per destination: the sealed password (sealed.go) and a
// certificate's private key (hierrestore.go). Both are read the same way:
// by the version the receipt records, and proven by SHA-256 and size.

// sidecarEntry is the sidecar a receipt records for a copy, as pick reads
// it from a destination entry: the entry stored at location when one is,
// else the one of the destination named name (the same destination under
// its configured name).
func sidecarEntry(rec *receipt.Receipt, name, location string, pick func(receipt.Destination) *receipt.Sidecar) *receipt.Sidecar {
	var byName *receipt.Sidecar
	for _, d := range rec.Destinations {
		switch sp := pick(d); {
		case sp == nil:
		case location != "" && sp.Location == location:
			return sp
		case d.Name == name:
			byName = sp
		}
	}
	return byName
}

// fetchSidecar downloads the sidecar of copy c stored at key, by the
// version side records, and proves it is the one recorded (SHA-256 and
// size). what names it in errors ("sealed password"), loss says what its
// absence means ("the copy cannot be opened"). A missing or damaged
// sidecar is exit 6; a failed request keeps its transfer code.
func fetchSidecar(ctx context.Context, d Destination, c Copy, key string, side *receipt.Sidecar, what, loss string, max int64) ([]byte, error) {
	t := target{name: d.Config.Name, backend: d.Backend}
	blob, err := download(ctx, d.Backend, key, side.VersionID, max)
	if err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, verifyErrorf(t, "the %s of %s (%s version %q) is missing: %s: %w", what, c.Location, d.Backend.Location(key), side.VersionID, loss, err)
		}
		return nil, transferError("read the "+what, t, key, err)
	}
	sum := sha256.Sum256(blob)
	switch {
	case hex.EncodeToString(sum[:]) != side.SHA256:
		return nil, verifyError(t, fmt.Sprintf("the %s of %s (%s version %q) has SHA-256 %x, its receipt records %s: it is damaged or was replaced, and %s", what, c.Location, d.Backend.Location(key), side.VersionID, sum, side.SHA256, loss))
	case side.Bytes > 0 && int64(len(blob)) != side.Bytes:
		return nil, verifyError(t, fmt.Sprintf("the %s of %s (%s version %q) has %d bytes, its receipt records %d: it is damaged or was replaced, and %s", what, c.Location, d.Backend.Location(key), side.VersionID, len(blob), side.Bytes, loss))
	}
	return blob, nil
}
