# A/B slot selection for U-Boot, the bootloader's half of edged's "uboot" boot-control backend
# (firmware.backend: uboot; docs/ota.md, "Boot loaders"). Compile it and source it from the
# board's boot command on every boot, before the kernel is loaded:
#
#   mkimage -A arm64 -T script -C none -d ab-select.cmd ab-select.scr
#   bootcmd=load mmc 0:1 ${scriptaddr} ab-select.scr && source ${scriptaddr} && run boot_slot
#
# It leaves the slot to boot, A or B, in the shell variable ab_slot; the board's boot_slot then
# loads that slot's kernel and passes "rauc.slot=${ab_slot}" on the kernel command line (edged
# reads the booted slot from firmware.cmdline, default /proc/cmdline).
#
# edged writes three variables with fw_setenv:
#   BOOT_ORDER="A B"   slots in boot order
#   BOOT_A_LEFT=3      boot attempts left for slot A
#   BOOT_B_LEFT=3      boot attempts left for slot B
# An unset one reads as "A B" or ab_max_attempts, as edged reads it. Board settings, in the
# environment: ab_max_attempts (default 3; set it to firmware.max_attempts) and ab_save, the
# command that stores the environment (default saveenv).
#
# On every boot: the first slot in BOOT_ORDER with attempts left loses one attempt, which is
# stored before the kernel starts, so a slot that crashes before edged marks it good runs out
# of attempts and the next boot takes the next slot. When the environment cannot be stored,
# a slot on its last attempt (a slot on trial) is skipped, since it could otherwise be booted
# forever, and another slot with attempts left boots uncounted; only when every slot with
# attempts left is on its last one does the first of them boot uncounted (with
# firmware.max_attempts 1 that can be a slot on trial, again and again: keep it at 2 or more).
# A slot edged left out of BOOT_ORDER is disabled (a bad or half-written slot) and never booted.
# When no slot of the order has attempts left (power cuts during boot, before edged gave its
# slot them back), every slot of the order gets ab_max_attempts again, as RAUC's scripts do,
# and the first boots, counted. Only when that cannot be stored, ab_max_attempts is not a count
# from 1 to 100, or the order names no slot, does a slot boot uncounted (the first of the
# order, or A): a device must boot something.
#
# Only "A" and "B" are taken from BOOT_ORDER, and a count only as edged writes it (0 to 100);
# any other value counts as no attempts left. The classic U-Boot shell (hush, as in Debian 12's
# U-Boot 2023.01) flattens and re-parses every command that expands a variable, so quotes in a
# value could split a comparison: HUSH_NO_EVAL=1 turns that off while the script runs, and
# values read from the environment are never quoted. Environment variables shadow shell
# variables of the same name, so the helpers' names are deleted from the environment first.
# The script changes no environment variable but the counts and the helper names it deletes
# (saveenv stores the whole environment as it is in memory). Use a redundant environment (two copies) where the
# board allows: a failed save to a single copy may lose the whole environment.
#
# The shell has no arithmetic in decimal (setexpr is hex), drops empty words in a for list and
# cannot unset a shell variable (x= keeps the old value): hence the count-down table and the
# "none" markers.

HUSH_NO_EVAL=1
setenv ab_slot
setenv ab_first
setenv ab_s
setenv ab_known
setenv ab_left
setenv ab_less
setenv ab_prev
setenv ab_n
setenv ab_tens
setenv ab_units
setenv ab_order
setenv ab_max
setenv ab_unstored
setenv ab_stored
setenv ab_pass
setenv ab_reset
setenv ab_o

if env exists ab_max_attempts; then ab_max=${ab_max_attempts}; else ab_max=3; fi
if env exists BOOT_ORDER; then ab_order=${BOOT_ORDER}; else ab_order="A B"; fi

ab_slot=none
ab_first=none
ab_unstored=none
ab_reset=no
for ab_pass in 1 2; do
    if test ${ab_pass} = 2 -a ${ab_slot} = none -a ${ab_unstored} = none -a ${ab_first} != none; then
        # Every slot of the order used up its attempts (power cuts during boot, before edged
        # could give its slot them back): RAUC's reset. This pass reads every count of the
        # order as ab_max; only once ab_max proves a count are they set, and saveenv stores
        # them with the one taken. A slot left out of the order stays disabled.
        echo ab-select: no slot has boot attempts left: the slots of the order get ${ab_max} again
        ab_reset=yes
    fi
    if test ${ab_pass} = 1 -o ${ab_reset} = yes; then
        for ab_s in ${ab_order}; do
            ab_known=no
            ab_left=none
            if test ${ab_s} = A; then
                ab_known=yes
                if env exists BOOT_A_LEFT; then ab_left=${BOOT_A_LEFT}; else ab_left=${ab_max}; fi
            fi
            if test ${ab_s} = B; then
                ab_known=yes
                if env exists BOOT_B_LEFT; then ab_left=${BOOT_B_LEFT}; else ab_left=${ab_max}; fi
            fi
            if test ${ab_reset} = yes; then ab_left=${ab_max}; fi
            if test ${ab_known} = no; then
                echo ab-select: BOOT_ORDER names ${ab_s}, not a slot: skipped
            else
                if test ${ab_first} = none; then ab_first=${ab_s}; fi
                if test ${ab_slot} = none; then
                    # ab_less = ab_left - 1 for a count from 1 to 100, else none.
                    ab_less=none
                    ab_prev=0
                    for ab_n in 1 2 3 4 5 6 7 8 9; do
                        if test ${ab_n} = ${ab_left}; then ab_less=${ab_prev}; fi
                        ab_prev=${ab_n}
                    done
                    for ab_tens in 1 2 3 4 5 6 7 8 9; do
                        for ab_units in 0 1 2 3 4 5 6 7 8 9; do
                            if test ${ab_tens}${ab_units} = ${ab_left}; then ab_less=${ab_prev}; fi
                            ab_prev=${ab_tens}${ab_units}
                        done
                    done
                    if test 100 = ${ab_left}; then ab_less=99; fi
                    if test ${ab_less} != none; then
                        if test ${ab_reset} = yes; then
                            for ab_o in ${ab_order}; do
                                if test ${ab_o} = A; then setenv BOOT_A_LEFT ${ab_max}; fi
                                if test ${ab_o} = B; then setenv BOOT_B_LEFT ${ab_max}; fi
                            done
                        fi
                        setenv BOOT_${ab_s}_LEFT ${ab_less}
                        ab_stored=no
                        if env exists ab_save; then
                            if run ab_save; then ab_stored=yes; fi
                        else
                            if saveenv; then ab_stored=yes; fi
                        fi
                        if test ${ab_stored} = yes; then
                            ab_slot=${ab_s}
                        elif test ${ab_less} = 0; then
                            echo ab-select: could not store BOOT_${ab_s}_LEFT: slot ${ab_s} was on its last attempt, skipped
                            setenv BOOT_${ab_s}_LEFT ${ab_left}
                            if test ${ab_unstored} = none; then ab_unstored=${ab_s}; fi
                        else
                            echo ab-select: could not store BOOT_${ab_s}_LEFT: booting slot ${ab_s} uncounted
                            ab_slot=${ab_s}
                        fi
                    elif test ${ab_reset} = yes; then
                        echo ab-select: ab_max_attempts is not a count from 1 to 100: no reset
                    elif test 0 != ${ab_left}; then
                        echo ab-select: BOOT_${ab_s}_LEFT is not a count: slot ${ab_s} skipped
                    fi
                fi
            fi
        done
    fi
done

if test ${ab_slot} = none -a ${ab_unstored} != none; then
    echo ab-select: no slot can be counted: booting slot ${ab_unstored}, on its last attempt, uncounted
    ab_slot=${ab_unstored}
fi
if test ${ab_slot} = none; then
    if test ${ab_first} = none; then ab_first=A; fi
    echo ab-select: no slot can be booted counted: booting slot ${ab_first}, the first in the order, uncounted
    ab_slot=${ab_first}
fi
HUSH_NO_EVAL=0
