# Run on the admin VM as the vagrant user (tests/e2e/test_appliance_vm.py, over SSH):
# `systemctl reload netboot` under the real systemd, first with a broken configuration,
# then with a new DHCP range. Prints key=value lines for the test to check.
set -u
conf=/etc/netboot/netboot.toml
mainpid() { systemctl show -p MainPID --value netboot; }
pid=$(mainpid)
same() { [ "$(mainpid)" = "$pid" ] && echo yes || echo no; }

sudo sed -i 's/^range_end = .*/range_end = "10.77.0.9"/' $conf
sudo systemctl reload netboot
echo "bad-reload-exit=$?"
echo "after-bad: $(systemctl is-active netboot) pid-same=$(same)"
refused=$(sudo journalctl -u netboot --no-pager -o cat | grep -c "reload refused: bad configuration")
echo "refused-lines=$refused"

sudo sed -i -e 's/^range_start = .*/range_start = "10.66.0.200"/' \
    -e 's/^range_end = .*/range_end = "10.66.0.210"/' $conf
sudo systemctl reload netboot
echo "good-reload-exit=$?"
for _ in $(seq 1 120); do
    [ "$(systemctl is-active netboot)" = active ] && break
    sleep 1
done
echo "after-good: $(systemctl is-active netboot) pid-same=$(same)"
sudo journalctl -u netboot --no-pager -o cat | grep "reload plan:" | tail -1
sudo netboot status
echo "status-exit=$?"
