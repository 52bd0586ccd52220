"""The serial driver against a simulated instrument on a pseudo-terminal: the door's contract,
queries and streams, noise on the wire, and a port that vanishes and comes back."""

from __future__ import annotations

from contextlib import aclosing

import pytest
from plantd_drivers.serial import SerialDriver, SerialGroup

from hil.serial import SerialSimulator, nmea
from plantd.bus import Quality
from plantd.errors import DeviceFault, DeviceUnavailable
from plantd.module import Reading, load_driver, pushes
from plantd.testing import check_driver
from tests.conftest import Stack
from tests.drivers.module_harness import running_module
from tests.drivers.serial.conftest import ModuleMaker


async def next_batch(driver: SerialDriver, group: SerialGroup) -> dict[str, Reading]:
    async with aclosing(driver.stream(group)) as stream:
        async for batch in stream:
            return batch
    raise AssertionError("the stream ended")


async def test_the_driver_is_registered() -> None:
    assert load_driver("serial") is SerialDriver


async def test_conformance(make_module: ModuleMaker, sim: SerialSimulator) -> None:
    module = make_module()
    readings = await check_driver(SerialDriver(module), module)
    assert readings["net"] == Reading(12.5)
    assert readings["stable"] == Reading(True)


async def test_queries_and_streams(make_module: ModuleMaker, sim: SerialSimulator) -> None:
    module = make_module()
    weight, gps = module.groups
    driver = SerialDriver(module)
    assert not pushes(driver, weight)
    assert pushes(driver, gps)
    await driver.open()
    try:
        sim.set("net", -3.25)
        assert (await driver.read(weight))["net"] == Reading(-3.25)
        assert sim.received[-1] == "SI"
        batch = await next_batch(driver, gps)
        assert batch["latitude"].value == pytest.approx(48 + 7.038 / 60)
        assert batch["longitude"].value == pytest.approx(-(11 + 31.0 / 60))  # W is negative
        assert batch["satellites"] == Reading(8)
        assert batch["geoid"].quality is Quality.BAD  # an empty field
        assert "field 11 is empty" in str(batch["geoid"].error)
        assert (await driver.read(gps))["satellites"] == Reading(8)  # the last values
    finally:
        await driver.close()


async def test_garbage_and_partial_lines_on_the_wire(
    make_module: ModuleMaker, sim: SerialSimulator
) -> None:
    module = make_module()
    gps = module.groups[1]
    driver = SerialDriver(module)
    await driver.open()
    try:
        async with aclosing(driver.stream(gps)) as stream:
            await anext(stream)
            sim.set("sats", 11)
            await sim.inject(b"\x00\xff\xfe noise\r\n")  # noise: a frame nobody takes
            await sim.inject(nmea("GPGGA,1,4807.038,N,01131.000,E,1,99,0.9,1,M,,").encode()[:-1])
            await sim.inject(b"7\r\n")  # the same line, finished, with a wrong checksum
            await sim.inject(b"$GPGGA,12")  # half a line: it spoils the line it runs into
            async for batch in stream:
                if batch["satellites"].value != 8:
                    break
            assert batch["satellites"] == Reading(11)  # 99 never got through
        status = driver.status()
        assert status["unmatched_frames"] >= 1
        assert status["rejected_frames"] == 2  # the wrong checksum, and the spoilt line
        assert "NMEA checksum mismatch" in str(status["last_rejection"])
        assert status["discarded_bytes"] == 0  # without a start marker noise is a frame
    finally:
        await driver.close()


async def test_a_silent_instrument_is_unavailable_and_a_wrong_answer_a_fault(
    make_module: ModuleMaker, sim: SerialSimulator
) -> None:
    module = make_module()
    weight = module.groups[0]
    driver = SerialDriver(module)
    await driver.open()
    try:
        sim.silent = True
        with pytest.raises(DeviceUnavailable, match=r"no answer to 'SI\\r\\n' within 0.3 s"):
            await driver.read(weight)
        await driver.open()  # as the runtime would, after backoff
        sim.silent = False
        sim.wrong_answer = "ES"  # the scale answers "syntax error"
        with pytest.raises(DeviceFault, match=r"the answer did not match the group .*'ES'"):
            await driver.read(weight)
    finally:
        await driver.close()


async def test_a_missing_port_is_unavailable(
    make_module: ModuleMaker, sim: SerialSimulator
) -> None:
    module = make_module()
    sim.unplug()
    with pytest.raises(DeviceUnavailable, match=r"cannot open .*ttySIM"):
        await SerialDriver(module).open()


async def test_kernel_rs485_mode_where_unsupported_says_so(
    make_module: ModuleMaker, sim: SerialSimulator
) -> None:
    text = (
        make_module()
        .source.read_text()
        .replace(  # type: ignore[union-attr]
            "  timeout: 300ms\n", "  timeout: 300ms\n  rs485: {mode: kernel}\n"
        )
    )
    module = make_module(text.replace("{", "{{").replace("}", "}}"), name="rs485")
    with pytest.raises(DeviceFault, match=r"RS-485 kernel mode is not supported here.*software"):
        await SerialDriver(module).open()


async def test_the_port_vanishing_and_coming_back_is_survived(
    stack: Stack, make_module: ModuleMaker, sim: SerialSimulator
) -> None:
    module = make_module()
    driver = SerialDriver(module)
    async with running_module(stack, module, driver) as running:
        await running.sample("data.scale.satellites", Quality.GOOD)
        await running.sample("data.scale.net", Quality.GOOD)
        sim.unplug()  # the USB adapter is pulled
        await running.sample("data.scale.satellites", Quality.BAD)
        await running.sample("data.scale.net", Quality.BAD)
        await running.until(  # reopening fails: there is no port
            lambda: "cannot open" in (running.runtime.connection.last_error or ""),
            "a failed reopening",
        )
        status = await running.call("status")
        assert "cannot open" in status["connection"]["last_error"]
        sim.set("net", 99.5)
        sim.replug()
        assert (await running.sample("data.scale.net", Quality.GOOD)).value == 99.5
        await running.sample("data.scale.satellites", Quality.GOOD)
        assert driver.opened >= 2
