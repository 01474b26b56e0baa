package main_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyescrow/keyescrow/internal/testutil"
)

// The forgery attack of the campaign: with the agent's own credentials,
// store a copy of other bytes under a newer name in the worker's folder,
// with a receipt made from a genuine one (the names, version and checksums
// changed to the forgery's, its signature left as it was, so it no longer
// verifies). A restore that then writes the forged bytes is a false
// success. It runs only when the binary signs receipts (it has init-key):
// without signatures such a forgery is accepted (issue 12 item 1).

var (
	signingOnce sync.Once
	signingOK   bool
)

// signingAvailable reports whether the built binary has keyescrow init-key.
func signingAvailable() bool {
	signingOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keyescrow-initkey-")
		if err != nil {
			return
		}
		defer os.RemoveAll(dir)
		cmd := exec.Command(binary, "init-key", "--out", filepath.Join(dir, "k"))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		signingOK = cmd.Run() == nil
	})
	return signingOK
}

// enableSigning gives the worker a signing key and pins its public key.
func (w *worker) enableSigning() {
	dir := filepath.Join(w.e.root, "signing")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		w.t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "signing.key")
	cmd := exec.Command(binary, "init-key", "--out", keyFile)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + w.e.root}
	out, err := cmd.Output()
	if err != nil {
		w.t.Fatalf("init-key: %v", err)
	}
	w.e.vars["KEYESCROW_SIGNING_KEY_FILE"] = keyFile
	w.e.vars["KEYESCROW_TRUST_PUBLIC_KEYS"] = strings.TrimSpace(string(out))
}

var copyName = regexp.MustCompile(`^(.*)-(\d{8}T\d{6}Z)-([0-9a-f]+)\.key$`)

// forgery returns the forged copy's bytes (as long as the genuine ones),
// its name — a newer one in the same folder as genuineKey, or with
// sameName genuineKey itself (a new version over the genuine copy) — and
// the receipt made from the genuine one.
func (w *worker) forgery(genuineKey string, receipt []byte, sameName bool) (name string, data, rec []byte, err error) {
	dir, base := path.Split(genuineKey)
	m := copyName.FindStringSubmatch(base)
	if m == nil {
		return "", nil, nil, fmt.Errorf("unexpected copy name %q", base)
	}
	newer := time.Now().UTC().Add(time.Hour).Format("20060102T150405Z")
	forgedBase := fmt.Sprintf("%s-%s-%s.key", m[1], newer, testutil.RandHex(len(m[3])/2))
	data = bytes.Repeat([]byte{'F'}, len(w.data))
	copy(data, "forged ")
	gs, fs := sha256.Sum256(w.data), sha256.Sum256(data)
	if sameName {
		// A new version of the genuine copy and of its receipt.
		w.planted = append(w.planted, base)
		rec = bytes.ReplaceAll(receipt, []byte(hex.EncodeToString(gs[:])), []byte(hex.EncodeToString(fs[:])))
		return genuineKey, data, rec, nil
	}
	w.planted = append(w.planted, forgedBase)
	rec = bytes.ReplaceAll(receipt, []byte(base), []byte(forgedBase))
	rec = bytes.ReplaceAll(rec, []byte(hex.EncodeToString(gs[:])), []byte(hex.EncodeToString(fs[:])))
	rec = bytes.ReplaceAll(rec, []byte(m[2]), []byte(newer))
	return dir + forgedBase, data, rec, nil
}

// forgeS3 plants a forgery in the worker's bucket.
func forgeS3(admin *s3.Client, bucket, prefix string) func(w *worker, sameName bool) error {
	return func(w *worker, sameName bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, err := admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix + w.host + "/")})
		if err != nil {
			return err
		}
		var genuine string
		for _, o := range list.Contents {
			// A copy with a receipt: a killed run may leave one without.
			if c, ok := strings.CutSuffix(aws.ToString(o.Key), ".key.receipt.json"); ok {
				genuine = c + ".key"
			}
		}
		if genuine == "" {
			return fmt.Errorf("no genuine copy under %s", prefix+w.host)
		}
		got, err := admin.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(genuine + ".receipt.json")})
		if err != nil {
			return err
		}
		receipt, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil {
			return err
		}
		key, data, rec, err := w.forgery(genuine, receipt, sameName)
		if err != nil {
			return err
		}
		until := time.Now().Add(25 * time.Hour)
		put := func(k string, b []byte) (string, error) {
			sum := sha256.Sum256(b)
			out, err := admin.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: bytes.NewReader(b),
				ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumSHA256: aws.String(b64(sum[:])),
				ObjectLockMode: types.ObjectLockModeCompliance, ObjectLockRetainUntilDate: aws.Time(until),
				Metadata: map[string]string{"sha256": hex.EncodeToString(sum[:])}})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.VersionId), nil
		}
		// The receipt names the copy's version: the forgery's replaces
		// the genuine one's.
		head, err := admin.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(genuine)})
		if err != nil {
			return err
		}
		version, err := put(key, data)
		if err != nil {
			return err
		}
		if gv := aws.ToString(head.VersionId); gv != "" && version != "" {
			rec = bytes.ReplaceAll(rec, []byte(gv), []byte(version))
		}
		_, err = put(key+".receipt.json", rec)
		return err
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// forgeAzure plants a forgery in the worker's container.
func forgeAzure(c *container.Client) func(w *worker, sameName bool) error {
	return func(w *worker, sameName bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		prefix := w.host + "/"
		pager := c.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{Prefix: &prefix})
		var genuine string
		for pager.More() {
			page, err := pager.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, b := range page.Segment.BlobItems {
				// A copy with a receipt: a killed run may leave one without.
				if c, ok := strings.CutSuffix(*b.Name, ".key.receipt.json"); ok {
					genuine = c + ".key"
				}
			}
		}
		if genuine == "" {
			return fmt.Errorf("no genuine copy under %s", prefix)
		}
		r, err := c.NewBlobClient(genuine+".receipt.json").DownloadStream(ctx, nil)
		if err != nil {
			return err
		}
		receipt, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return err
		}
		key, data, rec, err := w.forgery(genuine, receipt, sameName)
		if err != nil {
			return err
		}
		for k, b := range map[string][]byte{key: data, key + ".receipt.json": rec} {
			sum := sha256.Sum256(b)
			hexSum := hex.EncodeToString(sum[:])
			if _, err := c.NewBlockBlobClient(k).UploadBuffer(ctx, b, &blockblob.UploadBufferOptions{Metadata: map[string]*string{"sha256": &hexSum}}); err != nil {
				return err
			}
		}
		return nil
	}
}
