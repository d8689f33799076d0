#!/usr/bin/env bash
# Builds the test bed described in testbed/README.md from scratch: a test CA, a Samba AD DC, an OpenLDAP slapd
# with ppolicy and a PostgreSQL cluster on loopback addresses, then writes $DIR/env for the Go tests (testbed.Load).
#
# Where (all optional; `make test` and `make bench` set them per run through testbed/with.sh):
#   WRITEBACK_TESTBED_DIR        state dir (default /tmp/writeback-testbed)
#   WRITEBACK_TESTBED_AD_ADDR    Samba's address; it always uses ports 389 and 636 (default 127.0.0.2)
#   WRITEBACK_TESTBED_LDAP_ADDR  slapd's address, ports 3389 (StartTLS) and 3636 (LDAPS) (default 127.0.0.1)
#   WRITEBACK_TESTBED_DEAD_ADDR  host:port where nothing may listen, for failover tests (default 127.0.0.1:1)
#   WRITEBACK_TESTBED_PG_ADDR    PostgreSQL's host:port; port 0 picks a free one (default 127.0.0.5:0)
#
# Every run starts clean: services left over from an earlier run in the same state dir are stopped and the dir is
# recreated, so a test never sees users, lockouts or password history from a previous run. Nothing outside the state
# dir is touched, so test beds with different dirs and addresses run side by side.
set -euo pipefail

started=$SECONDS
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $(id -u) -ne 0 ]]; then
	echo "the test bed needs root: Samba AD binds ports 389/636 (run it as root, e.g. sudo make test)" >&2
	exit 1
fi

DIR=${WRITEBACK_TESTBED_DIR:-/tmp/writeback-testbed}
AD_ADDR=${WRITEBACK_TESTBED_AD_ADDR:-127.0.0.2}
LDAP_ADDR=${WRITEBACK_TESTBED_LDAP_ADDR:-127.0.0.1}
DEAD_HOSTPORT=${WRITEBACK_TESTBED_DEAD_ADDR:-127.0.0.1:1}
PG_HOSTPORT=${WRITEBACK_TESTBED_PG_ADDR:-127.0.0.5:0}
LDAP_PORT=3389
LDAPS_PORT=3636
# Marker that makes a directory ours: we only ever wipe a directory that carries it.
MARKER=.writeback-testbed

log() { printf '[testbed %3ds] %s\n' $((SECONDS - started)) "$*"; }
die() { printf 'testbed: %s\n' "$*" >&2; exit 1; }

# Loopback only: every 127.x.y.z works without configuring lo, and nothing is ever reachable from outside.
loopback='^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$'
for a in "$AD_ADDR" "$LDAP_ADDR" "${DEAD_HOSTPORT%:*}" "${PG_HOSTPORT%:*}"; do
	[[ $a =~ $loopback ]] || die "$a is not a 127.x.y.z loopback address"
done
[[ ${DEAD_HOSTPORT##*:} =~ ^[0-9]+$ ]] || die "WRITEBACK_TESTBED_DEAD_ADDR must be host:port, not $DEAD_HOSTPORT"
[[ ${PG_HOSTPORT##*:} =~ ^[0-9]+$ ]] || die "WRITEBACK_TESTBED_PG_ADDR must be host:port, not $PG_HOSTPORT"
PG_ADDR=${PG_HOSTPORT%:*}
PG_PORT=${PG_HOSTPORT##*:}
[[ $AD_ADDR != "$LDAP_ADDR" ]] || die "Samba and slapd need different addresses (both $AD_ADDR)"

# ---------------------------------------------------------------------------------------------------------------
# Packages. Only call apt-get when something is missing: apt-get update alone costs seconds and needs network.
# ---------------------------------------------------------------------------------------------------------------
need=()
for pkg in samba samba-ad-dc winbind ldap-utils slapd chromium openssl postgresql; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		need+=("$pkg")
	fi
done
if ((${#need[@]})); then
	log "installing ${need[*]}"
	apt-get update -q
	# Wait for a concurrent run's install instead of failing on the dpkg lock.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=300 "${need[@]}"
fi

# ---------------------------------------------------------------------------------------------------------------
# Fresh state dir. Stop what an earlier run left behind first (down.sh only kills what our pid files name).
# ---------------------------------------------------------------------------------------------------------------
if [[ -e $DIR ]]; then
	WRITEBACK_TESTBED_DIR=$DIR bash "$here/down.sh"
	if [[ -n $(ls -A "$DIR") && ! -e $DIR/$MARKER ]]; then
		die "$DIR exists, is not empty and was not made by up.sh; refusing to delete it (set WRITEBACK_TESTBED_DIR)"
	fi
	rm -rf "$DIR"
fi
mkdir -p "$DIR"
# 711: the postgres user (initdb refuses root) must reach its cluster in $DIR/postgres; nobody may list the dir,
# and everything secret in it is 600 or in a 700 subdir.
chmod 711 "$DIR"
touch "$DIR/$MARKER"

# Fail early and clearly if someone else holds our addresses (e.g. a test bed started with another state dir):
# otherwise samba would start "fine" and the tests would talk to a different server.
for hp in "$AD_ADDR:636" "$AD_ADDR:389" "$LDAP_ADDR:$LDAPS_PORT" "$LDAP_ADDR:$LDAP_PORT"; do
	if (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null; then
		die "something already listens on $hp (another test bed? stop it with its down.sh, or use testbed/with.sh)"
	fi
done
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
if ((PG_PORT == 0)); then # any free port; with.sh probes and passes one of its own
	for ((i = 0; i < 100; i++)); do
		PG_PORT=$((20000 + RANDOM % 40000))
		listening "$PG_ADDR" "$PG_PORT" || break
	done
fi
! listening "$PG_ADDR" "$PG_PORT" || die "something already listens on $PG_ADDR:$PG_PORT (PostgreSQL's address)"
DEAD_URL=ldaps://$DEAD_HOSTPORT
if (exec 3<>"/dev/tcp/${DEAD_HOSTPORT%:*}/${DEAD_HOSTPORT##*:}") 2>/dev/null; then
	die "something listens on $DEAD_HOSTPORT, which the test bed uses as its dead URL"
fi

# Random passwords per run: nothing stale can log in to the next run. Letters+digits+'-' satisfy AD complexity (3 of
# 4 classes) and never need quoting in the env file or on a command line.
pw() { printf 'Tb-%s-%s9' "$(openssl rand -hex 6)" "$(openssl rand -hex 2 | tr a-f A-F)X"; }
AD_ADMIN_PW=$(pw)
AD_SVC_PW=$(pw)
AD_NORIGHTS_PW=$(pw)
LDAP_ADMIN_PW=$(pw)
LDAP_SVC_PW=$(pw)
LDAP_NORIGHTS_PW=$(pw)
PG_PW=$(pw)

# ---------------------------------------------------------------------------------------------------------------
# Certificates. Go insists on a SAN matching the dialled host and a positive serial; Samba's self-made certificate
# has neither, so both servers get one certificate from our own CA. The "wrong" CA signs nothing: it exists so tests
# can check that an untrusted chain is refused.
# ---------------------------------------------------------------------------------------------------------------
log "certificates"
tls=$DIR/tls
mkdir -p "$tls"
serial() { echo "0x1$(openssl rand -hex 15)"; } # leading 1: positive and never zero
make_ca() { # $1 = file prefix, $2 = subject CN
	openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 30 -set_serial "$(serial)" \
		-subj "/O=writeback test bed/CN=$2" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-keyout "$1.key" -out "$1.pem" 2>/dev/null
}
make_ca "$tls/ca" "writeback test CA"
make_ca "$tls/wrong-ca" "unrelated test CA"
# 127.0.0.1 is in the certificate whatever the servers' addresses: tests put proxies in front of a server on
# 127.0.0.1:0 (connections cut, outages) and the client must still verify the chain through them.
san="IP:$AD_ADDR,IP:$LDAP_ADDR"
[[ $AD_ADDR == 127.0.0.1 || $LDAP_ADDR == 127.0.0.1 ]] || san+=",IP:127.0.0.1"
openssl req -new -nodes -newkey rsa:2048 -subj "/O=writeback test bed/CN=dc1.writeback.test" \
	-keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
cat >"$tls/server.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san,DNS:localhost,DNS:dc1.writeback.test
EOF
openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -set_serial "$(serial)" \
	-days 30 -sha256 -extfile "$tls/server.ext" -out "$tls/server.pem" 2>/dev/null
chmod 600 "$tls"/*.key
export LDAPTLS_CACERT=$tls/ca.pem LDAPTLS_REQCERT=demand

# ---------------------------------------------------------------------------------------------------------------
# Samba AD DC on $AD_ADDR, ports 389/636 (Samba cannot move them; recipe: /work/shared/TESTBED.md).
# ---------------------------------------------------------------------------------------------------------------
log "samba: provision"
sd=$DIR/samba
mkdir -p "$sd/pid" "$sd/ncalrpc" "$sd/winbindd" "$sd/ntp_signd" "$sd/log"
# "/8" matters: a bare address makes samba bind nothing and stay up silently. Only the LDAP server runs (no DNS,
# KDC, SMB), which keeps start-up under a second and leaves other loopback ports alone.
samba-tool domain provision --targetdir="$sd" --realm=WRITEBACK.TEST --domain=WRITEBACK --server-role=dc \
	--dns-backend=NONE --use-rfc2307 --host-name=dc1 --adminpass="$AD_ADMIN_PW" \
	--option="interfaces = $AD_ADDR/8" --option="bind interfaces only = yes" \
	--option="server services = ldap" \
	--option="pid directory = $sd/pid" --option="ncalrpc dir = $sd/ncalrpc" \
	--option="winbindd socket directory = $sd/winbindd" --option="ntp signd socket directory = $sd/ntp_signd" \
	--option="log file = $sd/log/samba.log" >"$sd/log/provision.log" 2>&1 ||
	{ tail -20 "$sd/log/provision.log" >&2; die "samba provision failed (log: $sd/log/provision.log)"; }
smbconf=$sd/etc/smb.conf
# provision drops some options; without this an old password keeps working for 60 minutes after a reset, which
# would make "old password no longer works" tests lie.
sed -i '/^\[global\]/a\	old password allowed period = 0' "$smbconf"
grep -q 'old password allowed period = 0' "$smbconf" || die "could not set 'old password allowed period' in $smbconf"

sam=$sd/private/sam.ldb
st() { samba-tool "$@" -s "$smbconf" -H "$sam" >>"$sd/log/setup.log" 2>&1 || {
	tail -20 "$sd/log/setup.log" >&2
	die "samba-tool $* failed (log: $sd/log/setup.log)"
}; }

log "samba: policy, OU, accounts, delegation"
st domain passwordsettings set --min-pwd-length=7 --complexity=on --min-pwd-age=0 \
	--account-lockout-threshold=3 --account-lockout-duration=30 --reset-account-lockout-after=30
AD_BASE=DC=writeback,DC=test
AD_PEOPLE=OU=People,$AD_BASE
st ou create "$AD_PEOPLE"
st user create wbsvc "$AD_SVC_PW" --description="writeback service account (test bed)"
st user create wbnorights "$AD_NORIGHTS_PW" --description="ordinary account without delegation (test bed)"

# The two bind accounts get a fine-grained policy without lockout: a test that checks "wrong service password" must
# not lock the account every other test binds with. Everybody else (test users) keeps the domain policy.
st domain passwordsettings pso create svc-nolockout 1 --min-pwd-length=7 --complexity=on --min-pwd-age=0 \
	--account-lockout-threshold=0
st domain passwordsettings pso apply svc-nolockout wbsvc
st domain passwordsettings pso apply svc-nolockout wbnorights

# Delegation as an admin would do it in "Delegate Control": ACEs on the OU, inherited (CI+IO) only by user objects.
svc_sid=$(samba-tool user show wbsvc --attributes=objectSid -s "$smbconf" -H "$sam" 2>/dev/null |
	sed -n 's/^objectSid: //p')
[[ $svc_sid == S-1-5-21-* ]] || die "could not read the SID of wbsvc"
USER_CLASS=bf967aba-0de6-11d0-a285-00aa003049e2
RESET_PASSWORD=00299570-246d-11d0-a768-00aa006e0529  # extended right User-Force-Change-Password
CHANGE_PASSWORD=ab721a53-1e2f-11d0-9819-00aa0040529b # extended right User-Change-Password
LOCKOUT_TIME=28630ebf-41d5-11d1-a9c1-0000f80367c1    # attribute lockoutTime
PWD_LAST_SET=bf967a0a-0de6-11d0-a285-00aa003049e2    # attribute pwdLastSet
sddl=""
for ace in "CR;$RESET_PASSWORD" "CR;$CHANGE_PASSWORD" "RPWP;$LOCKOUT_TIME" "RPWP;$PWD_LAST_SET"; do
	sddl+="(OA;CIIO;${ace%%;*};${ace#*;};$USER_CLASS;$svc_sid)"
done
st dsacl set --objectdn="$AD_PEOPLE" --sddl="$sddl"
grep -q "$RESET_PASSWORD" <(samba-tool dsacl get --objectdn="$AD_PEOPLE" -s "$smbconf" -H "$sam" 2>/dev/null) ||
	die "delegation of Reset Password on $AD_PEOPLE did not stick"

# Samba picks these up by default ("tls certfile" etc. point to private/tls); without them it generates its own.
install -m 600 "$tls/server.key" "$sd/private/tls/key.pem"
install -m 644 "$tls/server.pem" "$sd/private/tls/cert.pem"
install -m 644 "$tls/ca.pem" "$sd/private/tls/ca.pem"

log "samba: start"
# setsid: the DC must outlive this script and a Ctrl-C in the terminal that ran it; down.sh stops it by pid.
setsid samba -F --no-process-group -M single --debug-stdout -s "$smbconf" </dev/null >"$sd/log/samba.out" 2>&1 &
echo $! >"$DIR/samba.pid"

wait_ldaps() { # $1 = URL, $2 = pid file, $3 = log file
	local i
	for ((i = 0; i < 150; i++)); do
		if ldapsearch -x -LLL -o nettimeout=2 -H "$1" -s base -b "" namingContexts >/dev/null 2>&1; then
			return 0
		fi
		kill -0 "$(cat "$2")" 2>/dev/null || { tail -20 "$3" >&2; die "server behind $1 died (log: $3)"; }
		sleep 0.2
	done
	tail -20 "$3" >&2
	die "no answer from $1 after 30 s (log: $3)"
}
wait_ldaps "ldaps://$AD_ADDR" "$DIR/samba.pid" "$sd/log/samba.out"

# ---------------------------------------------------------------------------------------------------------------
# OpenLDAP slapd with ppolicy on $LDAP_ADDR:3389/3636, its own cn=config (the system slapd is never touched).
# ---------------------------------------------------------------------------------------------------------------
log "slapd: config and data"
ld=$DIR/slapd
mkdir -p "$ld/slapd.d" "$ld/data"
LDAP_BASE=dc=writeback,dc=test
LDAP_PEOPLE=ou=people,$LDAP_BASE
LDAP_ADMIN=cn=admin,$LDAP_BASE
LDAP_SVC=cn=wbsvc,$LDAP_BASE
LDAP_NORIGHTS=cn=wbnorights,$LDAP_BASE
hash() { slappasswd -h '{SSHA}' -s "$1"; }

# ACLs, first match wins:
#  - passwords under ou=people: the service DN resets them, users change their own, anonymous may only bind;
#  - other passwords (the service DNs' own): self-change and bind only;
#  - lock state under ou=people: the service DN unlocks; ppolicy itself writes these internally, past the ACLs;
#  - everything else: both service DNs read (wbnorights can search but not write), users read their own entry.
cat >"$ld/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $ld/slapd.pid
olcArgsFile: $ld/slapd.args
olcTLSCACertificateFile: $tls/ca.pem
olcTLSCertificateFile: $tls/server.pem
olcTLSCertificateKeyFile: $tls/server.key

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcAccess: {0}to dn.base="" by * read
olcAccess: {1}to dn.base="cn=subschema" by * read

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcDbDirectory: $ld/data
olcSuffix: $LDAP_BASE
olcRootDN: $LDAP_ADMIN
olcRootPW: $(hash "$LDAP_ADMIN_PW")
olcDbIndex: objectClass eq
olcDbIndex: uid,cn,mail eq
olcAccess: {0}to dn.subtree="$LDAP_PEOPLE" attrs=userPassword by dn.exact="$LDAP_SVC" write by self write by anonymous auth by * none
olcAccess: {1}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {2}to dn.subtree="$LDAP_PEOPLE" attrs=pwdAccountLockedTime,pwdReset,pwdFailureTime by dn.exact="$LDAP_SVC" write by dn.exact="$LDAP_NORIGHTS" read by self read by * none
olcAccess: {3}to * by dn.exact="$LDAP_SVC" read by dn.exact="$LDAP_NORIGHTS" read by self read by * none

dn: olcOverlay={0}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {0}ppolicy
olcPPolicyDefault: cn=default,ou=policies,$LDAP_BASE
olcPPolicyHashCleartext: TRUE
olcPPolicyUseLockout: TRUE
EOF

# slapadd bypasses the overlays, so the service DNs' passwords are hashed here and pwdPolicySubentry is set directly.
cat >"$ld/data.ldif" <<EOF
dn: $LDAP_BASE
objectClass: dcObject
objectClass: organization
dc: writeback
o: writeback test bed

dn: ou=policies,$LDAP_BASE
objectClass: organizationalUnit
ou: policies

dn: cn=default,ou=policies,$LDAP_BASE
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdMinLength: 7
pwdCheckQuality: 2
pwdInHistory: 5
pwdLockout: TRUE
pwdMaxFailure: 3
pwdLockoutDuration: 1800
pwdFailureCountInterval: 1800
pwdMinAge: 0
pwdMaxAge: 0
pwdAllowUserChange: TRUE
pwdMustChange: FALSE
pwdSafeModify: FALSE

dn: cn=service,ou=policies,$LDAP_BASE
objectClass: device
objectClass: pwdPolicy
cn: service
pwdAttribute: userPassword
pwdMinLength: 7
pwdCheckQuality: 2
pwdLockout: FALSE
pwdMinAge: 0
pwdMaxAge: 0
pwdAllowUserChange: TRUE

dn: $LDAP_PEOPLE
objectClass: organizationalUnit
ou: people

dn: $LDAP_SVC
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: wbsvc
description: writeback service account (test bed)
userPassword: $(hash "$LDAP_SVC_PW")
pwdPolicySubentry: cn=service,ou=policies,$LDAP_BASE

dn: $LDAP_NORIGHTS
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: wbnorights
description: ordinary account without write rights (test bed)
userPassword: $(hash "$LDAP_NORIGHTS_PW")
pwdPolicySubentry: cn=service,ou=policies,$LDAP_BASE
EOF
slapadd -n0 -F "$ld/slapd.d" -l "$ld/config.ldif" >"$ld/slapadd.log" 2>&1 ||
	{ cat "$ld/slapadd.log" >&2; die "slapadd of cn=config failed"; }
slapadd -n1 -F "$ld/slapd.d" -l "$ld/data.ldif" >>"$ld/slapadd.log" 2>&1 ||
	{ cat "$ld/slapadd.log" >&2; die "slapadd of the data failed"; }

log "slapd: start"
# -d keeps slapd in the foreground (so $! is its pid) and sends its stats log to our file.
setsid slapd -F "$ld/slapd.d" -h "ldap://$LDAP_ADDR:$LDAP_PORT/ ldaps://$LDAP_ADDR:$LDAPS_PORT/" -d stats \
	</dev/null >"$ld/slapd.log" 2>&1 &
echo $! >"$DIR/slapd.pid"
wait_ldaps "ldaps://$LDAP_ADDR:$LDAPS_PORT" "$DIR/slapd.pid" "$ld/slapd.log"

# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL on $PG_ADDR:$PG_PORT: a throw-away cluster of this run, as the postgres user (initdb refuses root), with
# password logins over TCP (so tests can see a wrong password refused) and fsync off (tests only). Tests create a
# database each (testbed.NewPostgresDB) as the superuser whose URL the env file holds.
# ---------------------------------------------------------------------------------------------------------------
log "postgresql: initdb and start"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $pgbin/initdb ]] || die "no PostgreSQL server binaries under /usr/lib/postgresql"
pgver=$("$pgbin/postgres" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)?.*/\1/')
((pgver >= 15)) || die "PostgreSQL $pgver is too old: writeback needs 15 or later"
pg=$DIR/postgres
mkdir -p "$pg"
printf '%s\n' "$PG_PW" >"$pg/pwfile"
chmod 600 "$pg/pwfile"
chown -R postgres: "$pg"
chmod 700 "$pg"
runuser -u postgres -- "$pgbin/initdb" -D "$pg/data" -U postgres --pwfile="$pg/pwfile" --auth-local=peer \
	--auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$pg/initdb.log" 2>&1 ||
	{ tail -20 "$pg/initdb.log" >&2; die "initdb failed (log: $pg/initdb.log)"; }
rm -f "$pg/pwfile"
# setsid: like the directories, the cluster outlives this script and a Ctrl-C in its terminal; down.sh stops it.
setsid -w runuser -u postgres -- "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/postgres.log" -w -t 60 \
	-o "-c listen_addresses=$PG_ADDR -p $PG_PORT -k $pg -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
	start >"$pg/pg_ctl.log" 2>&1 || { tail -20 "$pg/postgres.log" >&2; die "PostgreSQL did not start (log: $pg/postgres.log)"; }
head -1 "$pg/data/postmaster.pid" >"$DIR/postgres.pid"
PG_URL="postgres://postgres:$PG_PW@$PG_ADDR:$PG_PORT/postgres?sslmode=disable"
psql "$PG_URL" -Atqc 'SELECT 1' >/dev/null 2>&1 || die "cannot log in to PostgreSQL at $PG_ADDR:$PG_PORT"

# ---------------------------------------------------------------------------------------------------------------
# Smoke checks: the service accounts bind over TLS, i.e. what every Go test assumes.
# ---------------------------------------------------------------------------------------------------------------
AD_SVC=CN=wbsvc,CN=Users,$AD_BASE
AD_NORIGHTS=CN=wbnorights,CN=Users,$AD_BASE
AD_ADMIN=CN=Administrator,CN=Users,$AD_BASE
check_bind() { # $1 URL, $2 DN, $3 password
	ldapsearch -x -LLL -o nettimeout=5 -H "$1" -D "$2" -w "$3" -s base -b "" namingContexts >/dev/null 2>&1 ||
		die "bind as $2 at $1 failed"
}
check_bind "ldaps://$AD_ADDR" "$AD_SVC" "$AD_SVC_PW"
check_bind "ldaps://$AD_ADDR" "$AD_NORIGHTS" "$AD_NORIGHTS_PW"
check_bind "ldaps://$AD_ADDR" "$AD_ADMIN" "$AD_ADMIN_PW"
check_bind "ldaps://$LDAP_ADDR:$LDAPS_PORT" "$LDAP_SVC" "$LDAP_SVC_PW"
check_bind "ldaps://$LDAP_ADDR:$LDAPS_PORT" "$LDAP_NORIGHTS" "$LDAP_NORIGHTS_PW"
check_bind "ldaps://$LDAP_ADDR:$LDAPS_PORT" "$LDAP_ADMIN" "$LDAP_ADMIN_PW"

# ---------------------------------------------------------------------------------------------------------------
# The env file: exactly the keys of testbed/README.md. Written last and atomically, so its presence means "up".
# ---------------------------------------------------------------------------------------------------------------
chromium_bin=$(command -v chromium || true)
[[ -n $chromium_bin ]] || die "chromium is not on PATH"
cat >"$DIR/env.tmp" <<EOF
WB_TEST_CA_FILE=$tls/ca.pem
WB_TEST_WRONG_CA_FILE=$tls/wrong-ca.pem
WB_TEST_DEAD_URL=$DEAD_URL
WB_TEST_CHROMIUM=$chromium_bin
WB_TEST_AD_URL=ldaps://$AD_ADDR:636
WB_TEST_AD_STARTTLS_URL=ldap://$AD_ADDR:389
WB_TEST_AD_PLAIN_URL=ldap://$AD_ADDR:389
WB_TEST_AD_BASE_DN=$AD_BASE
WB_TEST_AD_PEOPLE_DN=$AD_PEOPLE
WB_TEST_AD_BIND_DN=$AD_SVC
WB_TEST_AD_BIND_PASSWORD=$AD_SVC_PW
WB_TEST_AD_NORIGHTS_DN=$AD_NORIGHTS
WB_TEST_AD_NORIGHTS_PASSWORD=$AD_NORIGHTS_PW
WB_TEST_AD_ADMIN_DN=$AD_ADMIN
WB_TEST_AD_ADMIN_PASSWORD=$AD_ADMIN_PW
WB_TEST_LDAP_URL=ldaps://$LDAP_ADDR:$LDAPS_PORT
WB_TEST_LDAP_STARTTLS_URL=ldap://$LDAP_ADDR:$LDAP_PORT
WB_TEST_LDAP_PLAIN_URL=ldap://$LDAP_ADDR:$LDAP_PORT
WB_TEST_LDAP_BASE_DN=$LDAP_BASE
WB_TEST_LDAP_PEOPLE_DN=$LDAP_PEOPLE
WB_TEST_LDAP_BIND_DN=$LDAP_SVC
WB_TEST_LDAP_BIND_PASSWORD=$LDAP_SVC_PW
WB_TEST_LDAP_NORIGHTS_DN=$LDAP_NORIGHTS
WB_TEST_LDAP_NORIGHTS_PASSWORD=$LDAP_NORIGHTS_PW
WB_TEST_LDAP_ADMIN_DN=$LDAP_ADMIN
WB_TEST_LDAP_ADMIN_PASSWORD=$LDAP_ADMIN_PW
WB_TEST_POSTGRES_URL=$PG_URL
EOF
chmod 600 "$DIR/env.tmp"
mv "$DIR/env.tmp" "$DIR/env"

cat <<EOF
testbed up in $((SECONDS - started)) s (state: $DIR)
  Samba AD DC  ldaps://$AD_ADDR:636, StartTLS ldap://$AD_ADDR:389   pid $(cat "$DIR/samba.pid")  log $sd/log/samba.out
  OpenLDAP     ldaps://$LDAP_ADDR:$LDAPS_PORT, StartTLS ldap://$LDAP_ADDR:$LDAP_PORT  pid $(cat "$DIR/slapd.pid")  log $ld/slapd.log
  PostgreSQL   $PG_ADDR:$PG_PORT  pid $(cat "$DIR/postgres.pid")  log $pg/postgres.log
  dead URL     $DEAD_URL
  env file     $DIR/env        stop with: WRITEBACK_TESTBED_DIR=$DIR bash $here/down.sh
EOF
