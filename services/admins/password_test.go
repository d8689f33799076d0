package admins

import "testing"

func TestHashAndVerify(t *testing.T) {
	p := HashParams{Memory: 1024, Time: 1, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		pw   string
		want bool
	}{{"correct horse", true}, {"correct hors", false}, {"", false}}
	for _, c := range cases {
		if ok, err := VerifyPassword(h, c.pw); err != nil || ok != c.want {
			t.Errorf("%q: %v %v", c.pw, ok, err)
		}
	}
	if _, err := VerifyPassword("$bcrypt$junk", "x"); err == nil {
		t.Error("malformed hash accepted")
	}
}
