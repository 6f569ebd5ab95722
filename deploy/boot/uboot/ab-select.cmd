# A/B slot selection for U-Boot, the bootloader's half of edged's "uboot" boot-control backend
# (firmware.backend: uboot; docs/ota.md, "Boot loaders"). Compile it and source it from the
# board's boot command on every boot, before the kernel is loaded:
#
#   mkimage -A arm64 -T script -C none -d ab-select.cmd ab-select.scr
#   bootcmd=load mmc 0:1 ${scriptaddr} ab-select.scr && source ${scriptaddr} && run boot_slot
#
# It leaves the slot to boot, A or B, in ab_slot; the board's boot_slot then loads that slot's
# kernel and passes "rauc.slot=${ab_slot}" on the kernel command line (edged reads the booted
# slot from firmware.cmdline, default /proc/cmdline).
#
# edged writes three variables with fw_setenv:
#   BOOT_ORDER="A B"   slots in boot order
#   BOOT_A_LEFT=3      boot attempts left for slot A
#   BOOT_B_LEFT=3      boot attempts left for slot B
# An unset one reads as "A B" or ab_max_attempts (default 3; set it to firmware.max_attempts),
# as edged reads it.
#
# On every boot: the first slot in BOOT_ORDER with attempts left loses one attempt, which is
# saved (saveenv) before the kernel starts, so a slot that crashes before edged marks it good
# runs out of attempts and the next boot takes the next slot. When no slot has attempts left,
# the first slot of the order boots uncounted and nothing is saved (a device must boot
# something; edged re-arms the slot it runs from).
#
# Only "A" and "B" are taken from BOOT_ORDER, and a count only as edged writes it (0 to 100);
# any other value counts as no attempts left. Values are compared, never run. Every helper is a
# shell variable, not an environment variable, so saveenv stores nothing but the new count.
# When saveenv fails the script says so and still boots the slot, uncounted.
#
# U-Boot's shell has no arithmetic in decimal (setexpr is hex), drops empty words in a for list
# and cannot unset a shell variable (x= keeps the old value): hence the count-down table and
# the "none" markers.

if test -z "${ab_max_attempts}"; then ab_max_attempts=3; fi
if test -z "${BOOT_ORDER}"; then ab_order="A B"; else ab_order="${BOOT_ORDER}"; fi

ab_slot=none
ab_first=none
for ab_s in ${ab_order}; do
    ab_left=none
    if test "${ab_s}" = A; then
        if test -z "${BOOT_A_LEFT}"; then ab_left="${ab_max_attempts}"; else ab_left="${BOOT_A_LEFT}"; fi
    fi
    if test "${ab_s}" = B; then
        if test -z "${BOOT_B_LEFT}"; then ab_left="${ab_max_attempts}"; else ab_left="${BOOT_B_LEFT}"; fi
    fi
    if test "${ab_left}" = none; then
        echo "ab-select: BOOT_ORDER names ${ab_s}, not a slot; skipped"
    else
        if test "${ab_first}" = none; then ab_first="${ab_s}"; fi
        if test "${ab_slot}" = none; then
            # ab_less = ab_left - 1 for a count from 1 to 100, else none.
            ab_less=none
            ab_prev=0
            for ab_n in 1 2 3 4 5 6 7 8 9; do
                if test "${ab_n}" = "${ab_left}"; then ab_less="${ab_prev}"; fi
                ab_prev="${ab_n}"
            done
            for ab_tens in 1 2 3 4 5 6 7 8 9; do
                for ab_units in 0 1 2 3 4 5 6 7 8 9; do
                    if test "${ab_tens}${ab_units}" = "${ab_left}"; then ab_less="${ab_prev}"; fi
                    ab_prev="${ab_tens}${ab_units}"
                done
            done
            if test "${ab_left}" = 100; then ab_less=99; fi
            if test "${ab_less}" != none; then
                ab_slot="${ab_s}"
                setenv "BOOT_${ab_s}_LEFT" "${ab_less}"
                if saveenv; then
                    true
                else
                    echo "ab-select: could not save BOOT_${ab_s}_LEFT; booting slot ${ab_s} uncounted"
                fi
            elif test "${ab_left}" != 0; then
                echo "ab-select: BOOT_${ab_s}_LEFT is [${ab_left}], not a count; slot ${ab_s} skipped"
            fi
        fi
    fi
done

if test "${ab_slot}" = none; then
    if test "${ab_first}" = none; then ab_first=A; fi
    echo "ab-select: no slot has boot attempts left; booting slot ${ab_first}, the first in the order"
    ab_slot="${ab_first}"
fi
